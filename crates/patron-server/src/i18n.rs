//! The UI's two languages: zh-CN (default) and English. Templates read labels from a dictionary
//! passed as `t`, so a missing translation shows up as an empty label in tests, not a crash.

use std::collections::BTreeMap;

use axum_extra::extract::CookieJar;

/// Cookie holding the chosen language.
pub const LANG_COOKIE: &str = "patron_lang";

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 简体中文 (default).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// From the language cookie; zh-CN unless it says `en`.
    pub fn from_jar(jar: &CookieJar) -> Lang {
        match jar.get(LANG_COOKIE).map(|c| c.value()) {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }
    /// BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
    /// The cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// (key, 中文, English)
const LABELS: &[(&str, &str, &str)] = &[
    ("app_name", "patron 客户关系管理", "patron CRM"),
    ("customers", "客户", "Customers"),
    ("import", "导入", "Import"),
    ("logout", "退出", "Log out"),
    ("login", "登录", "Log in"),
    ("email", "邮箱", "Email"),
    ("password", "密码", "Password"),
    ("login_failed", "邮箱或密码不正确", "Wrong email or password"),
    ("search", "搜索", "Search"),
    ("search_placeholder", "姓名、手机、邮箱、微信或编号", "Name, mobile, email, WeChat id or external id"),
    ("all_cities", "全部城市", "All cities"),
    ("all_tags", "全部标签", "All tags"),
    ("all_kinds", "全部类型", "All kinds"),
    ("person", "个人", "Person"),
    ("organisation", "企业", "Organisation"),
    ("name", "姓名", "Name"),
    ("mobile", "手机", "Mobile"),
    ("wechat_id", "微信", "WeChat"),
    ("city", "城市", "City"),
    ("owner", "客户经理", "Account manager"),
    ("orders", "订单", "Orders"),
    ("spend", "消费额", "Spend"),
    ("last_order", "最近下单", "Last order"),
    ("next_page", "下一页", "Next page"),
    ("first_page", "第一页", "First page"),
    ("no_results", "没有符合条件的客户", "No customers match"),
    ("total", "共", "Total"),
    ("profile", "基本资料", "Profile"),
    ("external_id", "客户编号", "External id"),
    ("kind", "类型", "Kind"),
    ("gender", "性别", "Gender"),
    ("male", "男", "Male"),
    ("female", "女", "Female"),
    ("unknown", "未知", "Unknown"),
    ("birthday", "生日", "Birthday"),
    ("tags", "标签", "Tags"),
    ("referrer", "推荐人", "Referred by"),
    ("consent", "联系许可", "Consent"),
    ("granted", "同意", "granted"),
    ("refused", "拒绝", "refused"),
    ("not_recorded", "未记录", "not recorded"),
    ("created_at", "创建时间", "Created"),
    ("updated_at", "更新时间", "Updated"),
    ("people", "联系人", "People"),
    ("role", "职务", "Role"),
    ("interests", "兴趣", "Interests"),
    ("notes", "备注", "Notes"),
    ("order_count", "订单数", "Orders"),
    ("first_order", "首次下单", "First order"),
    ("avg_order", "客单价", "Average order"),
    ("timeline", "时间线", "Timeline"),
    ("load_more", "加载更多", "Load more"),
    ("recent_orders", "最近订单", "Recent orders"),
    ("ordered_at", "下单时间", "Ordered"),
    ("channel", "渠道", "Channel"),
    ("store", "门店", "Store"),
    ("amount", "金额", "Amount"),
    ("status", "状态", "Status"),
    ("items", "商品", "Items"),
    ("history", "变更记录", "Change history"),
    ("field", "字段", "Field"),
    ("old_value", "原值", "Old value"),
    ("new_value", "新值", "New value"),
    ("by", "操作人", "By"),
    ("when", "时间", "When"),
    ("edit", "编辑", "Edit"),
    ("save", "保存", "Save"),
    ("cancel", "取消", "Cancel"),
    ("saved", "已保存", "Saved"),
    ("tags_hint", "多个标签用分号分隔", "Separate tags with semicolons"),
    ("import_title", "导入数据", "Import data"),
    ("import_kind", "数据类型", "Data"),
    ("kind_customers", "客户", "Customers"),
    ("kind_contacts", "企业联系人", "Organisation contacts"),
    ("kind_orders", "订单", "Orders"),
    ("kind_interactions", "互动", "Interactions"),
    ("file", "文件（CSV 或 JSON Lines，UTF-8 或 GB18030）", "File (CSV or JSON lines, UTF-8 or GB18030)"),
    ("skip_invalid", "跳过无效行，导入其余有效行", "Skip invalid rows and load the valid ones"),
    ("dry_run", "仅校验，不写入", "Validate only, write nothing"),
    ("run_import", "开始导入", "Import"),
    ("report", "导入结果", "Import report"),
    ("rows_read", "读取行数", "Rows read"),
    ("created", "新增", "Created"),
    ("updated", "更新", "Updated"),
    ("rejected", "拒绝", "Rejected"),
    ("committed", "已写入", "Written"),
    ("not_committed", "未写入任何数据", "Nothing was written"),
    ("row", "行", "Row"),
    ("column", "列", "Column"),
    ("value", "值", "Value"),
    ("reason", "原因", "Reason"),
    ("import_help", "格式说明见 docs/import-format.md：支持中英文表头，金额以元为单位（最多两位小数）。", "See docs/import-format.md: English or Chinese headers, amounts in yuan with at most 2 decimals."),
    ("error", "出错了", "Something went wrong"),
    ("back", "返回", "Back"),
    ("language", "English", "中文"),
    ("not_found", "没有找到", "Not found"),
    ("forbidden", "没有权限", "Not allowed"),
    ("sort", "排序", "Sort"),
    ("sort_id", "编号", "Id"),
    ("sort_name", "姓名", "Name"),
    ("sort_updated", "最近更新", "Recently updated"),
    ("add_note", "添加备注", "Add note"),
];

/// The labels of `lang`, keyed by label id.
pub fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::Zh { *zh } else { *en })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_both_languages_and_unique_keys() {
        let mut keys: Vec<&str> = LABELS.iter().map(|l| l.0).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "duplicate label key");
        assert!(LABELS.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }
}
