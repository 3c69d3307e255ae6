//! Static vocabularies: names, cities, stores, categories, products, interaction payloads.
//! Weights are relative (they need not sum to anything in particular).

/// Surnames with pinyin and relative frequency (per mille, roughly the 2020 census ranking).
pub const SURNAMES: &[(&str, &str, u32)] = &[
    ("王", "wang", 71),
    ("李", "li", 70),
    ("张", "zhang", 67),
    ("刘", "liu", 54),
    ("陈", "chen", 45),
    ("杨", "yang", 31),
    ("黄", "huang", 22),
    ("赵", "zhao", 20),
    ("吴", "wu", 20),
    ("周", "zhou", 19),
    ("徐", "xu", 13),
    ("孙", "sun", 12),
    ("马", "ma", 12),
    ("朱", "zhu", 11),
    ("胡", "hu", 11),
    ("郭", "guo", 10),
    ("何", "he", 10),
    ("高", "gao", 9),
    ("林", "lin", 9),
    ("罗", "luo", 9),
    ("郑", "zheng", 8),
    ("梁", "liang", 8),
    ("谢", "xie", 6),
    ("宋", "song", 6),
    ("唐", "tang", 6),
    ("许", "xu", 5),
    ("韩", "han", 5),
    ("冯", "feng", 5),
    ("邓", "deng", 5),
    ("曹", "cao", 5),
    ("彭", "peng", 4),
    ("曾", "zeng", 4),
    ("肖", "xiao", 4),
    ("田", "tian", 4),
    ("董", "dong", 4),
    ("袁", "yuan", 4),
    ("潘", "pan", 4),
    ("于", "yu", 4),
    ("蒋", "jiang", 4),
    ("蔡", "cai", 3),
    ("余", "yu", 3),
    ("杜", "du", 3),
    ("叶", "ye", 3),
    ("程", "cheng", 3),
    ("苏", "su", 3),
    ("魏", "wei", 3),
    ("吕", "lv", 3),
    ("丁", "ding", 3),
    ("任", "ren", 3),
    ("沈", "shen", 3),
    ("姚", "yao", 2),
    ("卢", "lu", 2),
    ("姜", "jiang", 2),
    ("崔", "cui", 2),
    ("钟", "zhong", 2),
    ("谭", "tan", 2),
    ("陆", "lu", 2),
    ("汪", "wang", 2),
    ("范", "fan", 2),
    ("金", "jin", 2),
    ("欧阳", "ouyang", 1),
    ("司马", "sima", 1),
    ("上官", "shangguan", 1),
];

/// Characters for male given names (with pinyin).
pub const MALE_CHARS: &[(&str, &str)] = &[
    ("伟", "wei"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("勇", "yong"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("斌", "bin"),
    ("超", "chao"),
    ("明", "ming"),
    ("刚", "gang"),
    ("平", "ping"),
    ("辉", "hui"),
    ("鹏", "peng"),
    ("华", "hua"),
    ("飞", "fei"),
    ("鑫", "xin"),
    ("波", "bo"),
    ("宇", "yu"),
    ("浩", "hao"),
    ("凯", "kai"),
    ("健", "jian"),
    ("俊", "jun"),
    ("帆", "fan"),
    ("子", "zi"),
    ("轩", "xuan"),
    ("博", "bo"),
    ("文", "wen"),
    ("晨", "chen"),
    ("阳", "yang"),
    ("建", "jian"),
    ("国", "guo"),
    ("志", "zhi"),
    ("天", "tian"),
    ("一", "yi"),
    ("泽", "ze"),
    ("嘉", "jia"),
    ("思", "si"),
    ("睿", "rui"),
    ("航", "hang"),
    ("成", "cheng"),
    ("海", "hai"),
];

/// Characters for female given names (with pinyin).
pub const FEMALE_CHARS: &[(&str, &str)] = &[
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("艳", "yan"),
    ("娟", "juan"),
    ("霞", "xia"),
    ("秀", "xiu"),
    ("玲", "ling"),
    ("燕", "yan"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("慧", "hui"),
    ("颖", "ying"),
    ("琳", "lin"),
    ("晶", "jing"),
    ("欣", "xin"),
    ("怡", "yi"),
    ("佳", "jia"),
    ("梦", "meng"),
    ("雨", "yu"),
    ("萱", "xuan"),
    ("诗", "shi"),
    ("涵", "han"),
    ("悦", "yue"),
    ("瑶", "yao"),
    ("倩", "qian"),
    ("璐", "lu"),
    ("洁", "jie"),
    ("蕾", "lei"),
    ("红", "hong"),
    ("梅", "mei"),
    ("兰", "lan"),
    ("晓", "xiao"),
    ("丹", "dan"),
    ("宁", "ning"),
    ("月", "yue"),
    ("心", "xin"),
    ("彤", "tong"),
    ("琪", "qi"),
    ("薇", "wei"),
];

/// Cities: (name, pinyin, weight, stores). Store names are full display names.
pub const CITIES: &[(&str, &str, u32, &[&str])] = &[
    ("上海", "shanghai", 22, &["上海南京西路店", "上海陆家嘴店", "上海徐家汇店", "上海静安寺店", "上海五角场店", "上海虹桥天地店"]),
    ("北京", "beijing", 18, &["北京三里屯店", "北京国贸店", "北京中关村店", "北京望京店", "北京西单店"]),
    ("杭州", "hangzhou", 10, &["杭州湖滨银泰店", "杭州西溪店", "杭州滨江店"]),
    ("成都", "chengdu", 9, &["成都春熙路店", "成都太古里店", "成都高新店"]),
    ("广州", "guangzhou", 9, &["广州天河城店", "广州北京路店", "广州珠江新城店"]),
    ("深圳", "shenzhen", 9, &["深圳福田店", "深圳南山店", "深圳华强北店"]),
    ("南京", "nanjing", 7, &["南京新街口店", "南京河西店"]),
    ("武汉", "wuhan", 6, &["武汉江汉路店", "武汉光谷店"]),
    ("西安", "xian", 5, &["西安钟楼店", "西安小寨店"]),
    ("重庆", "chongqing", 5, &["重庆解放碑店", "重庆观音桥店"]),
    ("苏州", "suzhou", 4, &["苏州观前街店", "苏州园区店"]),
    ("天津", "tianjin", 3, &["天津滨江道店"]),
];

/// The online shop (web orders are fulfilled centrally).
pub const ONLINE_STORE: &str = "线上商城";

/// Order categories: (name, person weight, organisation weight, products, max quantity).
pub const CATEGORIES: &[(&str, u32, u32, &[&str], u32)] = &[
    ("火锅", 30, 10, &["麻辣牛油锅底套餐", "鸳鸯锅双人套餐", "番茄锅四人套餐", "精品肥牛拼盘", "鲜毛肚", "手打虾滑", "菌汤锅套餐"], 2),
    ("中餐", 15, 8, &["宫保鸡丁", "水煮鱼", "回锅肉套餐", "小炒黄牛肉", "家常豆腐", "清蒸鲈鱼"], 3),
    ("茶饮", 20, 8, &["杨枝甘露", "多肉葡萄", "芝士奶盖绿茶", "珍珠奶茶", "手打柠檬茶", "生椰拿铁"], 4),
    ("烘焙", 12, 8, &["蛋黄酥", "凤梨酥", "肉松小贝", "牛角包", "提拉米苏", "生日蛋糕"], 6),
    ("外卖", 15, 4, &["单人火锅外卖套餐", "麻辣香锅", "酸菜鱼饭", "宫保鸡丁饭", "麻辣小龙虾", "冒菜套餐"], 3),
    ("礼品卡", 3, 20, &["电子礼品卡", "实体礼品卡", "节日礼品卡", "储值卡充值"], 1),
    ("零售", 5, 12, &["火锅底料礼盒", "秘制辣椒酱", "茶叶礼盒", "月饼礼盒", "手工粽子礼盒", "品牌马克杯"], 3),
    ("团餐", 0, 30, &["企业团餐", "会议茶歇", "年会宴席", "下午茶套餐", "商务宴请套餐"], 60),
];
pub const CAT_TAKEAWAY: usize = 4;
pub const CAT_GIFTCARD: usize = 5;
pub const CAT_RETAIL: usize = 6;

/// Order channels other than `delivery` (which goes with the 外卖 category): (name, person w, org w).
pub const CHANNELS: &[(&str, u32, u32)] = &[("store", 55, 15), ("app", 20, 5), ("wechat", 18, 35), ("web", 5, 25), ("phone", 2, 20)];

/// Page URLs per category (same order as `CATEGORIES`) and generic pages.
pub const CATEGORY_URLS: &[&[&str]] = &[
    &["/menu/hotpot", "/menu/hotpot/broth", "/menu/hotpot/sets"],
    &["/menu/dishes", "/menu/dishes/signature"],
    &["/menu/tea", "/menu/tea/new"],
    &["/menu/bakery", "/menu/bakery/cakes"],
    &["/delivery", "/delivery/menu"],
    &["/giftcards", "/giftcards/corporate"],
    &["/shop", "/shop/hotpot-base", "/shop/gift-boxes"],
    &["/catering", "/catering/quote"],
];
pub const GENERIC_URLS: &[&str] = &["/", "/stores", "/member/points", "/member/coupons", "/promotions/member-day", "/promotions/new"];
pub const CLICK_TARGETS: &[&str] = &["cta", "coupon", "share", "book-table", "add-to-cart"];

pub const SMS_CAMPAIGNS: &[&str] = &["会员日短信", "新品上市短信", "生日祝福短信", "积分到期提醒", "春节预订提醒"];
pub const EMAIL_CAMPAIGNS: &[&str] = &["月度会员通讯", "新品推荐邮件", "年度消费账单", "企业团餐方案"];
pub const REPLIES: &[&str] = &["好的，谢谢", "请问周六晚上还有包间吗？", "收到", "下次再来", "能开发票吗？", "优惠券怎么用？"];
pub const CALLS: &[&str] = &[
    "预订包间，8人，周六晚",
    "咨询团餐报价，约50人",
    "投诉外卖送达超时，已致歉并赠送优惠券",
    "咨询礼品卡使用范围",
    "修改预订时间",
    "咨询会员积分兑换",
    "反馈菜品偏咸，已转厨房",
];
pub const EVENTS: &[&str] = &["新品品鉴会", "会员日活动", "亲子烘焙课", "年终答谢会", "茶艺体验课"];

/// Interaction kinds: (kind, weight).
pub const INTERACTION_KINDS: &[(&str, u32)] =
    &[("page_view", 35), ("click", 14), ("sms_open", 16), ("email_open", 10), ("reply", 6), ("call", 6), ("visit", 8), ("event", 5)];

pub const EMAIL_DOMAINS: &[(&str, u32)] = &[
    ("qq.com", 40),
    ("163.com", 22),
    ("126.com", 8),
    ("sina.com", 5),
    ("foxmail.com", 6),
    ("139.com", 5),
    ("gmail.com", 7),
    ("outlook.com", 7),
];

/// Mobile number prefixes (3 digits) in use on the mainland.
pub const MOBILE_PREFIXES: &[u16] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 145, 147, 150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 171, 173, 175, 176, 177,
    178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 198, 199,
];

/// Organisation name parts: brand characters (with pinyin) and industries (with a domain word).
pub const BRAND_CHARS: &[(&str, &str)] = &[
    ("华", "hua"),
    ("信", "xin"),
    ("创", "chuang"),
    ("达", "da"),
    ("恒", "heng"),
    ("瑞", "rui"),
    ("博", "bo"),
    ("远", "yuan"),
    ("泰", "tai"),
    ("盛", "sheng"),
    ("鼎", "ding"),
    ("新", "xin"),
    ("锐", "rui"),
    ("腾", "teng"),
    ("宏", "hong"),
    ("嘉", "jia"),
    ("汇", "hui"),
    ("联", "lian"),
    ("智", "zhi"),
    ("云", "yun"),
    ("卓", "zhuo"),
    ("越", "yue"),
    ("启", "qi"),
    ("明", "ming"),
    ("天", "tian"),
    ("海", "hai"),
    ("金", "jin"),
    ("润", "run"),
    ("安", "an"),
    ("诚", "cheng"),
    ("宇", "yu"),
    ("通", "tong"),
    ("星", "xing"),
    ("辰", "chen"),
    ("晟", "sheng"),
    ("昊", "hao"),
];
pub const INDUSTRIES: &[(&str, &str)] = &[
    ("科技", "tech"),
    ("信息技术", "it"),
    ("网络科技", "net"),
    ("贸易", "trade"),
    ("文化传媒", "media"),
    ("实业", "group"),
    ("电子商务", "ec"),
    ("管理咨询", "consulting"),
    ("建设工程", "build"),
    ("生物科技", "bio"),
    ("教育科技", "edu"),
    ("物流", "logistics"),
    ("投资管理", "capital"),
    ("医疗器械", "med"),
    ("广告", "ad"),
    ("软件", "soft"),
];

pub const ROLES: &[&str] = &["行政经理", "采购", "总经理助理", "行政专员", "人事经理", "办公室主任", "财务主管", "市场总监"];
pub const INTERESTS: &[&str] = &["高尔夫", "茶艺", "摄影", "跑步", "红酒", "书法", "钓鱼", "登山", "羽毛球", "旅行", "围棋", "烘焙"];
pub const CONTACT_NOTES: &[&str] = &[
    "偏好包间，需提前一周预订",
    "每年春节前订购礼品卡",
    "不吃辣",
    "对价格敏感，需提前报价",
    "需开增值税专用发票",
    "周五下午茶固定订单",
    "喜欢新品试吃",
    "决策需总经理审批",
];

/// Account managers for the demo: (given name, surname, pinyin given, pinyin surname).
pub const ACCOUNT_MANAGERS: &[(&str, &str, &str, &str)] = &[
    ("晓燕", "林", "xiaoyan", "lin"),
    ("志强", "王", "zhiqiang", "wang"),
    ("静", "陈", "jing", "chen"),
    ("浩然", "张", "haoran", "zhang"),
    ("丽娜", "刘", "lina", "liu"),
    ("俊杰", "黄", "junjie", "huang"),
    ("雪", "赵", "xue", "zhao"),
    ("宇航", "周", "yuhang", "zhou"),
    ("思琪", "吴", "siqi", "wu"),
    ("建国", "徐", "jianguo", "xu"),
    ("婷婷", "孙", "tingting", "sun"),
    ("鹏", "马", "peng", "ma"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer emits vocabulary strings without quoting: none may need it.
    #[test]
    fn vocabulary_needs_no_csv_quoting() {
        let mut all: Vec<&str> = vec![ONLINE_STORE];
        all.extend(CITIES.iter().flat_map(|c| c.3.iter().copied().chain([c.0, c.1])));
        all.extend(CATEGORIES.iter().flat_map(|c| c.3.iter().copied().chain([c.0])));
        all.extend(CHANNELS.iter().map(|c| c.0));
        all.extend(CATEGORY_URLS.iter().flat_map(|u| u.iter().copied()));
        all.extend(INTERACTION_KINDS.iter().map(|k| k.0));
        for list in [GENERIC_URLS, CLICK_TARGETS, SMS_CAMPAIGNS, EMAIL_CAMPAIGNS, REPLIES, CALLS, EVENTS, ROLES, INTERESTS, CONTACT_NOTES] {
            all.extend(list.iter().copied());
        }
        for s in all {
            assert!(!s.contains([',', '"', '\n', '\r']), "{s:?}");
        }
    }
}
