//! The fields of each import kind, with the English and Chinese header names they are known by.

/// One canonical field of an import kind.
#[derive(Debug)]
pub struct FieldSpec {
    /// Canonical name.
    pub name: &'static str,
    /// Other header names (compared after [`normalise_header`]).
    pub aliases: &'static [&'static str],
    /// Must the file have this column?
    pub required: bool,
}

impl FieldSpec {
    /// Does a normalised header name this field?
    pub fn matches(&self, normalised: &str) -> bool {
        normalise_header(self.name) == normalised || self.aliases.iter().any(|a| normalise_header(a) == normalised)
    }
}

/// Lower-cases and drops spaces, `-` and `_`, so "Customer ID", "customer_id" and "customer-id" match.
pub fn normalise_header(h: &str) -> String {
    h.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '_' | '\u{3000}')).flat_map(char::to_lowercase).collect()
}

const fn f(name: &'static str, aliases: &'static [&'static str], required: bool) -> FieldSpec {
    FieldSpec { name, aliases, required }
}

/// customers.csv
pub mod customer {
    use super::{f, FieldSpec};
    pub const EXTERNAL_ID: usize = 0;
    pub const KIND: usize = 1;
    pub const NAME: usize = 2;
    pub const MOBILE: usize = 3;
    pub const EMAIL: usize = 4;
    pub const WECHAT_ID: usize = 5;
    pub const GENDER: usize = 6;
    pub const BIRTHDAY: usize = 7;
    pub const CITY: usize = 8;
    pub const TAGS: usize = 9;
    pub const OWNER: usize = 10;
    pub const REFERRER_ID: usize = 11;
    pub const CONSENT_SMS: usize = 12;
    pub const CONSENT_EMAIL: usize = 13;
    pub const CONSENT_WECHAT: usize = 14;
    pub const CREATED_AT: usize = 15;
    pub const HOME_UNIT: usize = 16;
    /// The fields, indexed by the constants above.
    pub static SPEC: [FieldSpec; 17] = [
        f("customer_id", &["external_id", "客户编号", "客户id", "会员编号", "会员id"], true),
        f("kind", &["类型", "客户类型"], false),
        f("name", &["姓名", "名称", "客户名称", "客户姓名"], true),
        f("mobile", &["手机", "手机号", "手机号码", "phone"], false),
        f("email", &["邮箱", "电子邮件", "邮件"], false),
        f("wechat_id", &["微信", "微信号", "wechat"], false),
        f("gender", &["性别", "sex"], false),
        f("birthday", &["生日", "出生日期", "birth_date"], false),
        f("city", &["城市"], false),
        f("tags", &["标签", "tag"], false),
        f("owner", &["客户经理", "负责人", "owner_email"], false),
        f("referrer_id", &["推荐人", "推荐人编号", "referrer"], false),
        f("consent_sms", &["短信同意"], false),
        f("consent_email", &["邮件同意"], false),
        f("consent_wechat", &["微信同意"], false),
        f("created_at", &["注册时间", "创建时间", "registered_at"], false),
        f("home_unit", &["所属门店", "归属机构", "home_unit_code"], false),
    ];
}

/// contacts.csv
pub mod contact {
    use super::{f, FieldSpec};
    pub const EXTERNAL_ID: usize = 0;
    pub const CUSTOMER_ID: usize = 1;
    pub const NAME: usize = 2;
    pub const ROLE: usize = 3;
    pub const MOBILE: usize = 4;
    pub const EMAIL: usize = 5;
    pub const INTERESTS: usize = 6;
    pub const NOTES: usize = 7;
    /// The fields.
    pub static SPEC: [FieldSpec; 8] = [
        f("contact_id", &["联系人编号", "联系人id"], true),
        f("customer_id", &["客户编号", "客户id"], true),
        f("name", &["姓名", "联系人"], true),
        f("role", &["职务", "职位", "title"], false),
        f("mobile", &["手机", "手机号"], false),
        f("email", &["邮箱", "电子邮件"], false),
        f("interests", &["兴趣", "爱好"], false),
        f("notes", &["备注", "note"], false),
    ];
}

/// orders.csv
pub mod order {
    use super::{f, FieldSpec};
    pub const EXTERNAL_ID: usize = 0;
    pub const CUSTOMER_ID: usize = 1;
    pub const ORDERED_AT: usize = 2;
    pub const AMOUNT: usize = 3;
    pub const DISCOUNT: usize = 4;
    pub const CURRENCY: usize = 5;
    pub const CHANNEL: usize = 6;
    pub const STORE: usize = 7;
    pub const STATUS: usize = 8;
    pub const CATEGORY: usize = 9;
    pub const PRODUCT: usize = 10;
    pub const QUANTITY: usize = 11;
    pub const PROMO: usize = 12;
    /// The fields.
    pub static SPEC: [FieldSpec; 13] = [
        f("order_id", &["订单号", "订单编号", "external_id"], true),
        f("customer_id", &["客户编号", "客户id", "会员编号"], true),
        f("ordered_at", &["下单时间", "订单时间", "order_date", "date"], true),
        f("amount", &["金额", "实付金额", "订单金额", "total"], true),
        f("discount", &["优惠", "优惠金额"], false),
        f("currency", &["币种"], false),
        f("channel", &["渠道"], false),
        f("store", &["门店"], false),
        f("status", &["状态", "订单状态"], false),
        f("category", &["品类", "类别"], false),
        f("product", &["商品", "商品名称"], false),
        f("quantity", &["数量"], false),
        f("promo", &["促销", "是否促销"], false),
    ];
}

/// interactions.csv
pub mod interaction {
    use super::{f, FieldSpec};
    pub const EXTERNAL_ID: usize = 0;
    pub const CUSTOMER_ID: usize = 1;
    pub const KIND: usize = 2;
    pub const OCCURRED_AT: usize = 3;
    pub const CHANNEL: usize = 4;
    pub const PAYLOAD: usize = 5;
    /// The fields.
    pub static SPEC: [FieldSpec; 6] = [
        f("interaction_id", &["互动编号", "external_id"], true),
        f("customer_id", &["客户编号", "客户id"], true),
        f("kind", &["类型"], true),
        f("occurred_at", &["时间", "发生时间"], true),
        f("channel", &["渠道"], false),
        f("payload", &["内容"], false),
    ];
}

/// tickets.csv (history from another helpdesk)
pub mod ticket {
    use super::{f, FieldSpec};
    pub const EXTERNAL_ID: usize = 0;
    pub const CUSTOMER_ID: usize = 1;
    pub const KIND: usize = 2;
    pub const CHANNEL: usize = 3;
    pub const SUBJECT: usize = 4;
    pub const BODY: usize = 5;
    pub const CATEGORY: usize = 6;
    pub const ROOT_CAUSE: usize = 7;
    pub const STATUS: usize = 8;
    pub const OPENED_AT: usize = 9;
    pub const FIRST_RESPONSE_AT: usize = 10;
    pub const RESOLVED_AT: usize = 11;
    pub const CONFIRMED_AT: usize = 12;
    pub const ASSIGNEE: usize = 13;
    pub const STORE: usize = 14;
    /// The fields.
    pub static SPEC: [FieldSpec; 15] = [
        f("ticket_id", &["工单编号", "工单号", "external_id"], true),
        f("customer_id", &["客户编号", "客户id", "会员编号"], true),
        f("kind", &["类型", "工单类型"], true),
        f("channel", &["渠道", "来源"], false),
        f("subject", &["主题", "标题"], true),
        f("body", &["内容", "描述", "问题描述"], false),
        f("category", &["分类", "问题分类"], false),
        f("root_cause", &["根本原因", "原因"], false),
        f("status", &["状态"], false),
        f("opened_at", &["创建时间", "提交时间", "时间"], true),
        f("first_response_at", &["首次响应时间", "响应时间"], false),
        f("resolved_at", &["解决时间"], false),
        f("confirmed_at", &["确认时间", "关闭时间"], false),
        f("assignee", &["负责人", "处理人"], false),
        f("store", &["门店"], false),
    ];
}

/// fulfilment.csv (the steps of orders' fulfilment chains, issue 19 §5)
pub mod fulfilment {
    use super::{f, FieldSpec};
    pub const ORDER_ID: usize = 0;
    pub const STEP: usize = 1;
    pub const AT: usize = 2;
    pub const PROMISED_AT: usize = 3;
    pub const NOTE: usize = 4;
    /// The fields.
    pub static SPEC: [FieldSpec; 5] = [
        f("order_id", &["订单号", "订单编号", "external_id", "order_external_id"], true),
        f("step", &["环节", "步骤", "履约环节"], true),
        f("at", &["完成时间", "实际时间", "done_at", "actual_at"], false),
        f("promised_at", &["承诺时间", "承诺日期", "promised"], false),
        f("note", &["备注"], false),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_in_both_languages() {
        let spec = &customer::SPEC;
        let find = |h: &str| spec.iter().position(|f| f.matches(&normalise_header(h)));
        assert_eq!(find("Customer ID"), Some(customer::EXTERNAL_ID));
        assert_eq!(find("客户编号"), Some(customer::EXTERNAL_ID));
        assert_eq!(find("手机"), Some(customer::MOBILE));
        assert_eq!(find("WeChat_ID"), Some(customer::WECHAT_ID));
        assert_eq!(find("colour"), None);
        // No two fields of a kind share a name.
        for spec in [&customer::SPEC[..], &contact::SPEC[..], &order::SPEC[..], &interaction::SPEC[..], &fulfilment::SPEC[..]] {
            let mut all: Vec<String> =
                spec.iter().flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied())).map(normalise_header).collect();
            let n = all.len();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), n);
        }
    }
}
