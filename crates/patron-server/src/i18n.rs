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
    /// From a `lang` request parameter (`zh`, `zh-CN`, `en`, `en-US` …); `None` for anything else.
    pub fn from_code(code: &str) -> Option<Lang> {
        let c = code.trim().to_ascii_lowercase();
        match c.split(['-', '_']).next() {
            Some("zh") => Some(Lang::Zh),
            Some("en") => Some(Lang::En),
            _ => None,
        }
    }
}

/// (key, 中文, English)
const LABELS: &[(&str, &str, &str)] = &[
    ("app_name", "patron 客户关系管理", "patron CRM"),
    ("on_time_nav", "准时交付", "On-time delivery"),
    ("customer_events_nav", "客户活动", "Events"),
    ("kpis_nav", "客户经理考核", "AM KPIs"),
    ("web_nav", "网站分析", "Web"),
    ("kind_fulfilment", "履约环节", "Fulfilment steps"),
    ("fulfilment_plans", "客户计划 →", "Account plan →"),
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
    ("kind_tickets", "工单（历史）", "Tickets (history)"),
    ("file", "文件（CSV 或 JSON Lines，UTF-8 或 GB18030）", "File (CSV or JSON lines, UTF-8 or GB18030)"),
    ("skip_invalid", "跳过无效行，导入其余有效行", "Skip invalid rows and load the valid ones"),
    ("dry_run", "仅校验，不写入", "Validate only, write nothing"),
    ("run_import", "开始导入", "Import"),
    ("report", "导入结果", "Import report"),
    ("rows_read", "读取行数", "Rows read"),
    ("created", "新增", "Created"),
    ("updated", "更新", "Updated"),
    ("unchanged", "未变", "Unchanged"),
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
    ("tickets", "工单", "Tickets"),
    ("sso_login", "单点登录 (SSO)", "Log in with single sign-on"),
    ("sso_failed", "单点登录失败", "Single sign-on failed"),
    ("tf_title", "两步验证", "Two-factor login"),
    ("tf_security", "账号安全", "Security"),
    ("tf_enter_code", "请输入验证器应用中的 6 位验证码，或一个恢复码。", "Enter the 6-digit code from your authenticator app, or a recovery code."),
    ("tf_code", "验证码", "Code"),
    ("tf_verify", "验证", "Verify"),
    ("tf_wrong_code", "验证码不正确", "That code is not right"),
    ("tf_recovery_hint", "手机丢失？输入一个恢复码（每个只能用一次）。", "Lost your phone? Enter a recovery code (each works once)."),
    ("tf_required_enrol", "您的角色要求两步验证：请先设置验证器。", "Your role requires two-factor login: set up an authenticator first."),
    ("tf_scan", "用验证器应用（如 Google Authenticator、Microsoft Authenticator）扫描二维码，然后输入显示的验证码。", "Scan the QR code with an authenticator app (Google Authenticator, Microsoft Authenticator …), then enter the code it shows."),
    ("tf_key", "无法扫描时手动输入密钥", "Key, to type in if you cannot scan"),
    ("tf_confirm", "确认并开启", "Confirm and turn on"),
    ("tf_codes_once", "请保存这些恢复码：它们只显示这一次，每个可代替验证码登录一次。", "Keep these recovery codes: they are shown only this once, and each logs you in once in place of a code."),
    ("tf_continue", "继续", "Continue"),
    ("tf_on", "两步验证已开启", "Two-factor login is on"),
    ("tf_off", "两步验证未开启", "Two-factor login is off"),
    ("tf_required", "您的角色要求开启", "required for your role"),
    ("tf_enable", "开启两步验证", "Turn on two-factor login"),
    ("tf_disable", "关闭两步验证", "Turn off two-factor login"),
    ("tf_cannot_disable", "您的角色要求两步验证，不能关闭。", "Your role requires two-factor login; it cannot be turned off."),
    ("tf_codes_left", "剩余恢复码", "Recovery codes left"),
    ("tf_new_codes", "生成新的恢复码", "New recovery codes"),
    ("tf_policy", "两步验证策略", "Two-factor policy"),
    ("tf_policy_help", "勾选的角色必须使用两步验证；尚未设置的用户在下次登录时先设置。", "Users of the roles ticked must log in with two factors; those without one set it up at their next login."),
    ("users_nav", "用户", "Users"),
    ("users_name", "姓名", "Name"),
    ("users_role", "角色", "Role"),
    ("users_units", "所属机构", "Units"),
    ("users_no_units", "尚无机构", "No units yet"),
    ("users_active", "启用", "Active"),
    ("users_inactive", "已停用", "Deactivated"),
    ("users_new", "新建用户", "New user"),
    ("users_create", "创建", "Create"),
    ("users_save", "保存", "Save"),
    ("users_deactivate", "停用", "Deactivate"),
    ("users_activate", "重新启用", "Activate"),
    ("users_deactivate_help", "停用立即结束该用户的会话并吊销其 API 令牌。", "Deactivation ends the user's sessions and revokes its API tokens at once."),
    ("users_new_password", "新密码（至少 10 个字符）", "New password (at least 10 characters)"),
    ("users_reset_password", "重置密码", "Reset password"),
    ("users_reset_tf", "重置两步验证（手机丢失）", "Reset two-factor login (lost phone)"),
    ("users_done_saved", "已保存", "Saved"),
    ("users_done_activated", "已重新启用", "Activated"),
    ("users_done_deactivated", "已停用：会话已结束，令牌已吊销", "Deactivated: sessions ended, tokens revoked"),
    ("users_done_password_reset", "密码已重置，该用户的会话已结束", "Password reset; the user's sessions ended"),
    ("users_done_two_factor_reset", "两步验证已重置", "Two-factor login reset"),
    ("login_throttled", "登录尝试过多，已暂停。请稍后再试：", "Too many login attempts; logins are paused. Try again in"),
    ("minutes", "分钟", "minutes"),
    ("service", "服务", "Service"),
    ("notifications", "通知", "Notifications"),
    ("audit_log", "审计日志", "Audit log"),
    ("audit_actor", "操作者", "Actor"),
    ("audit_customer", "客户", "Customer"),
    ("audit_action", "动作", "Action"),
    ("audit_from", "起始日", "From"),
    ("audit_to", "截止日", "To"),
    ("audit_filter", "筛选", "Filter"),
    ("audit_export", "导出 CSV", "Export CSV"),
    ("audit_at", "时间", "When"),
    ("audit_entity", "对象", "Entity"),
    ("audit_detail", "详情", "Detail"),
    ("audit_older", "更早的记录", "Older entries"),
    ("audit_none", "没有符合条件的记录", "No entries match"),
    ("webhooks", "Webhook", "Webhooks"),
    ("webhook_events", "订阅的事件", "Events"),
    ("webhook_events_help", "事件类型（ticket.opened）、前缀（ticket.*）或 *，用逗号分隔", "types (ticket.opened), prefixes (ticket.*) or *, separated by commas"),
    ("webhook_secret", "签名密钥", "Signing secret"),
    ("webhook_secret_help", "16–200 个字符；留空则自动生成", "16–200 characters; leave empty to have one generated"),
    ("webhook_secret_once", "签名密钥只显示这一次，请妥善保存：", "The signing secret is shown this once; keep it:"),
    ("webhook_signing_help", "每次投递以 JSON POST 发出，带 X-Patron-Event、X-Patron-Delivery 和 X-Patron-Signature: sha256=<正文的 HMAC-SHA256>；接收方以 2xx 确认，否则按退避重试，连续失败 20 次自动停用。", "Each delivery is a JSON POST with X-Patron-Event, X-Patron-Delivery and X-Patron-Signature: sha256=<HMAC-SHA256 of the body>; receivers answer 2xx, anything else is retried with backoff, and 20 failures in a row turn the webhook off."),
    ("webhook_new", "新建 Webhook", "New webhook"),
    ("webhook_create", "创建", "Create"),
    ("webhook_on", "启用", "On"),
    ("webhook_off", "已停用", "Off"),
    ("webhook_failures", "连续失败", "Failures in a row"),
    ("webhook_turn_on", "启用", "Turn on"),
    ("webhook_turn_off", "停用", "Turn off"),
    ("webhook_delete", "删除", "Delete"),
    ("webhook_deliveries", "投递记录", "Deliveries"),
    ("webhook_event", "事件", "Event"),
    ("webhook_attempts", "尝试次数", "Attempts"),
    ("webhook_last_answer", "最近应答", "Last answer"),
    ("webhook_replay", "重新投递", "Replay"),
    ("delivery_pending", "待投递", "Pending"),
    ("delivery_delivered", "已送达", "Delivered"),
    ("delivery_failed", "已放弃", "Gave up"),
    ("no_webhooks", "还没有 Webhook。", "No webhooks yet."),
    ("customer", "客户", "Customer"),
    ("too_few_to_tell", "样本太少，无法判断", "Too few to tell"),
    ("channel_preferences", "渠道偏好", "Channel preferences"),
    ("next_action", "下一步最佳行动", "Next best action"),
    ("nba_win_back", "挽回", "Win back"),
    ("nba_retain", "维系", "Retain"),
    ("nba_review", "回顾合作关系", "Review the relationship"),
    ("nba_referral", "邀请推荐", "Ask for a referral"),
    ("nba_nurture", "培育", "Nurture"),
    ("nba_upsell", "推荐品类", "Suggest a category"),
    ("nba_none", "暂无", "None"),
    ("nba_as_of", "分析日", "Analysis of"),
    ("rates_as_of", "依据分析日", "rates of the analysis of"),
    ("preferred_channel", "偏好渠道", "Preferred channel"),
    ("channel_sends", "已发送", "Sent"),
    ("channel_responses", "有回应", "Answered"),
    ("channel_rate", "回应率（后验均值）", "Response rate (posterior mean)"),
    ("my_tasks", "我的任务", "My tasks"),
    ("my_accounts", "我的客户", "My accounts"),
    ("account_card", "客户经营", "Account"),
    ("handover_note", "交接说明", "Handover note"),
    ("accounts_all", "全部", "All"),
    ("accounts_overdue", "逾期未联系", "Overdue contacts"),
    ("accounts_overdue_all", "全部逾期联系 →", "All overdue contacts →"),
    ("relationship_link", "关系图与评估 →", "People map and reviews →"),
    ("accounts_none", "暂无负责的客户", "No accounts in your portfolio"),
    ("accounts_days_overdue", "天逾期", "days overdue"),
    ("accounts_col_name", "客户", "Account"),
    ("accounts_col_tier", "等级", "Tier"),
    ("accounts_col_clv", "CLV", "CLV"),
    ("accounts_col_p_alive", "活跃概率", "P(alive)"),
    ("accounts_col_next_contact_due", "下次联系", "Next contact due"),
    ("accounts_col_open_tickets", "未结工单", "Open tickets"),
    ("accounts_col_stage", "关系阶段", "Relationship stage"),
    ("accounts_col_health", "健康度", "Health"),
    ("stage_acquaintance", "初识", "Acquaintance"),
    ("stage_breakthrough", "突破", "Breakthrough"),
    ("stage_consolidation", "巩固", "Consolidation"),
    ("stage_partnership", "伙伴", "Partnership"),
    ("task_title", "任务", "Task"),
    ("task_due", "截止日", "Due"),
    ("task_done", "已完成", "Done"),
    ("task_open", "待办", "Open"),
    ("task_reopen", "重新打开", "Reopen"),
    ("task_mark_done", "完成", "Mark done"),
    ("no_tasks", "没有任务。", "No tasks."),
    ("task_new", "新建任务", "New task"),
    ("task_create", "添加", "Add"),
    ("journeys", "客户旅程", "Journeys"),
    ("journey_name", "名称", "Name"),
    ("journey_trigger", "触发", "Trigger"),
    ("journey_goal", "目标", "Goal"),
    ("journey_entered", "进入", "Entered"),
    ("journey_active", "进行中", "Active"),
    ("journey_reached_goal", "达成目标", "Reached goal"),
    ("journey_exited", "已退出", "Exited"),
    ("journey_completed", "走完全程", "Completed"),
    ("journey_goal_rate", "目标达成率", "Goal rate"),
    ("journey_enabled", "已启用", "Enabled"),
    ("journey_disabled", "未启用", "Disabled"),
    ("journey_enable", "启用", "Enable"),
    ("journey_disable", "停用", "Disable"),
    ("no_journeys", "还没有客户旅程。", "No journeys yet."),
    ("journey_new", "新建旅程", "New journey"),
    ("journey_create", "创建（创建后为停用状态）", "Create (starts disabled)"),
    ("journey_holdout", "对照组比例 %", "Holdout %"),
    ("journey_reentry", "再次进入间隔（天）", "Re-entry after (days)"),
    ("journey_never", "不再进入", "never"),
    ("journey_steps", "步骤", "Steps"),
    ("journey_steps_help", "每行一个步骤，从 0 开始编号；条件步骤的“是/否”填后面某一步的编号，“否”留空表示结束。空行忽略。", "One step per row, numbered from 0; a condition's yes/no name a later step's number, an empty no ends the journey. Empty rows are ignored."),
    ("journey_step_type", "类型", "Type"),
    ("journey_step_days", "天", "days"),
    ("journey_step_hours", "小时", "hours"),
    ("journey_step_rule", "条件规则", "Rule"),
    ("journey_step_yes", "是 →", "yes →"),
    ("journey_step_no", "否 →", "no →"),
    ("journey_step_template", "模板", "Template"),
    ("journey_step_channel", "渠道", "Channel"),
    ("journey_step_add", "加标签", "Add tag"),
    ("journey_step_remove", "去标签", "Remove tag"),
    ("journey_wait", "等待", "Wait"),
    ("journey_condition", "条件分支", "Condition"),
    ("journey_send", "发送消息", "Send"),
    ("journey_task", "创建任务", "Task"),
    ("journey_tag", "标签", "Tag"),
    ("journey_exit", "结束", "Exit"),
    ("journey_preferred", "客户偏好渠道", "Preferred channel"),
    ("journey_report", "效果", "Report"),
    ("journey_treated", "干预组", "Treated"),
    ("journey_holdout_group", "对照组", "Holdout"),
    ("journey_total", "合计", "Total"),
    ("journey_lift", "目标达成率提升", "Goal lift"),
    ("no_deliveries", "还没有投递。", "No deliveries yet."),
    ("no_notifications", "没有通知。", "No notifications."),
    ("mark_read", "标为已读", "Mark read"),
    ("view_mine", "我的", "Mine"),
    ("view_team", "我的团队", "My team"),
    ("view_open", "全部未结", "All open"),
    ("view_breached", "已超时", "Breached"),
    ("view_due", "即将到期", "Due soon"),
    ("view_all", "全部", "All"),
    ("new_ticket", "新建工单", "New ticket"),
    ("ticket_kind", "类型", "Kind"),
    ("ticket_channel", "渠道", "Channel"),
    ("subject", "主题", "Subject"),
    ("ticket_body", "客户反映", "What the customer said"),
    ("category", "分类", "Category"),
    ("root_cause", "根本原因", "Root cause"),
    ("assignee", "负责人", "Assignee"),
    ("department", "部门", "Department"),
    ("next_due", "下一时限", "Next due"),
    ("first_response", "首次响应", "First response"),
    ("resolution", "解决", "Resolution"),
    ("due", "时限", "Due"),
    ("opened", "创建于", "Opened"),
    ("sla", "服务时限", "SLA"),
    ("reply_public", "回复客户", "Reply to the customer"),
    ("internal_note", "内部备注", "Internal note"),
    ("send", "发送", "Send"),
    ("move_to", "转为", "Move to"),
    ("note_optional", "备注（可选）", "Note (optional)"),
    ("compensation", "补偿", "Compensation"),
    ("authority", "一线权限", "Frontline authority"),
    ("amount_yuan", "金额（元）", "Amount (yuan)"),
    ("grant", "发放", "Grant"),
    ("approve", "批准", "Approve"),
    ("refuse", "拒绝", "Refuse"),
    ("take_ticket", "由我处理", "Take it"),
    ("assign", "分派", "Assign"),
    ("ticket_history", "处理记录", "History"),
    ("comments", "沟通记录", "Conversation"),
    ("confirmation_link", "请把确认链接发给客户（只显示这一次）：", "Send the customer this confirmation link (shown only once):"),
    ("policy", "服务政策", "Service policy"),
    ("premium", "专享服务", "Premium services"),
    ("open_tickets", "未结工单", "Open tickets"),
    ("no_tickets", "没有工单。", "No tickets."),
    ("pareto_title", "投诉原因帕累托图", "Pareto of complaint causes"),
    ("vital_few", "关键少数（累计 80%）", "The vital few (80% cumulative)"),
    ("cumulative", "累计占比", "Cumulative share"),
    ("count", "数量", "Count"),
    ("complaint_rate", "每千单投诉数", "Complaints per 1,000 orders"),
    ("target", "目标", "Target"),
    ("overall", "整体", "Overall"),
    ("kpis", "客服指标", "Service KPIs"),
    ("handled", "处理量", "Handled"),
    ("median_first_response", "首次响应中位数（分钟）", "Median first response (min)"),
    ("median_resolution", "解决时长中位数（分钟）", "Median resolution (min)"),
    ("sla_hit_rate", "达标率", "SLA hit rate"),
    ("reopened_rate", "重开率", "Reopened rate"),
    ("praise_count", "表扬", "Praise"),
    ("period_last_90", "近 90 天", "Last 90 days"),
    ("v_new", "新建", "new"),
    ("v_acknowledged", "已受理", "acknowledged"),
    ("v_in_progress", "处理中", "in progress"),
    ("v_waiting_on_customer", "等待客户", "waiting on customer"),
    ("v_resolved", "已解决", "resolved"),
    ("v_confirmed", "客户已确认", "confirmed"),
    ("v_reopened", "已重开", "reopened"),
    ("v_complaint", "投诉", "complaint"),
    ("v_inquiry", "咨询", "inquiry"),
    ("v_suggestion", "建议", "suggestion"),
    ("v_praise", "表扬", "praise"),
    ("v_survey", "问卷", "survey"),
    ("v_ticket", "工单", "ticket"),
    ("v_compensation", "补偿", "compensation"),
    ("v_met", "达标", "met"),
    ("v_breached", "超时", "breached"),
    ("v_granted", "已发放", "granted"),
    ("v_refused", "已拒绝", "refused"),
    ("v_refund", "退款", "refund"),
    ("v_voucher", "代金券", "voucher"),
    ("v_gift", "礼品", "gift"),
    ("v_points", "积分", "points"),
    ("v_customer", "客户", "customer"),
    ("v_timeout", "超时自动确认", "timeout"),
    ("v_staff", "员工代确认", "staff"),
    ("confirm_title", "问题解决了吗？", "Is it solved?"),
    ("confirm_intro", "我们已处理您反映的问题：", "We have dealt with what you told us about:"),
    ("resolved_on", "处理完成于", "Resolved on"),
    ("confirm_yes", "已解决", "Yes, it is solved"),
    ("confirm_no", "还没有解决", "No, not yet"),
    ("confirm_comment", "还想告诉我们什么？（可选）", "Anything to add? (optional)"),
    ("confirm_thanks_confirmed", "谢谢您的确认！", "Thank you for confirming!"),
    ("confirm_thanks_reopened", "抱歉没能让您满意，我们会尽快再次跟进。", "We are sorry it is not solved yet; we will follow up again soon."),
    ("link_expired", "此链接已过期。", "This link has expired."),
    ("link_used", "此链接已经回复过了，谢谢！", "This link has been answered already — thank you!"),
    ("link_unknown", "链接无效。", "This link is not valid."),
    ("link_busy", "请求太频繁，请稍后再试。", "Too many requests; please try again in a minute."),
    ("praise_feed", "表扬墙", "Praise from customers"),
    ("surveys", "满意度调查", "Surveys"),
    ("survey_new", "新建调查", "New survey"),
    ("survey_kind", "类型", "Kind"),
    ("survey_custom", "自定义问题", "Custom questions"),
    ("survey_questions", "问题（自定义时）", "Questions (custom)"),
    ("survey_questions_help", "每行一题：类型 | 问题 | 选项; 选项（类型：nps, scale, single, multiple, text, switch；类型后加 * 为必答）", "One per line: type | question | option; option (types: nps, scale, single, multiple, text, switch; * after the type makes it required)"),
    ("survey_trigger", "自动发送", "Sent automatically"),
    ("trigger_none", "手动邀请", "By hand"),
    ("trigger_order_completed", "订单完成后", "After a completed order"),
    ("trigger_ticket_resolved", "工单解决时", "When a ticket is resolved"),
    ("trigger_periodic", "定期（按分群）", "Periodically (a segment)"),
    ("trigger_days", "订单后天数", "Days after the order"),
    ("trigger_every_days", "每隔天数（定期）", "Every … days (periodic)"),
    ("expires_days", "链接有效天数", "Link valid for (days)"),
    ("recontact_days", "同一客户间隔天数", "Not the same customer within (days)"),
    ("survey_active", "进行中", "Active"),
    ("survey_paused", "已暂停", "Paused"),
    ("survey_pause", "暂停", "Pause"),
    ("survey_resume", "恢复", "Resume"),
    ("no_surveys", "还没有调查。", "No surveys yet."),
    ("segment", "分群", "Segment"),
    ("days", "天", "days"),
    ("create", "创建", "Create"),
    ("note", "备注", "Note"),
    ("answers", "回答数", "Answers"),
    ("invited", "已邀请", "Invited"),
    ("skipped", "未邀请", "Not invited"),
    ("skip_unknown_customer", "客户不存在", "no such customer"),
    ("skip_recently_invited", "近期已邀请过", "invited recently"),
    ("links_once", "链接只显示这一次，请现在发送给客户。", "The links are shown this once: send them to the customers now."),
    ("customer_ids_help", "客户编号，用逗号分隔", "Customer ids, separated by commas"),
    ("or_segment", "或选择分群", "or a segment"),
    ("invite", "邀请", "Invite"),
    ("csat_mean", "满意度均分", "CSAT (mean)"),
    ("promoters", "推荐者", "Promoters"),
    ("passives", "中立者", "Passives"),
    ("detractors", "贬损者", "Detractors"),
    ("complaints_opened", "生成投诉", "Complaints opened"),
    ("would_switch", "会为便宜 2% 转投", "Would switch for 2%"),
    ("distribution", "分数分布", "Score distribution"),
    ("trend", "月度趋势", "Monthly trend"),
    ("keywords", "开放回答关键词", "Keywords of open answers"),
    ("breakdown", "细分", "Breakdown"),
    ("by_tier", "按价值层级", "by tier"),
    ("by_segment", "按 RFM 分群", "by RFM segment"),
    ("by_store", "按门店", "by store"),
    ("by_agent", "按客服", "by agent"),
    ("period_last_365", "近 365 天", "Last 365 days"),
    ("survey_answers", "调查回答", "Survey answers"),
    ("no_survey_answers", "还没有回答过调查。", "No survey answers yet."),
    ("churn_reason", "流失原因", "Churn reason"),
    ("churn_by_reason", "流失原因 × 价值层级", "Churn reasons by tier"),
    ("unknown_reason", "未记录", "not recorded"),
    ("csat", "满意度", "CSAT"),
    ("survey_hello", "您好，", "Hello "),
    ("survey_intro", "感谢您光临。请花一分钟告诉我们您的感受：", "Thank you for coming. Please take a minute to tell us how we did:"),
    ("survey_submit", "提交", "Send"),
    ("survey_thanks", "谢谢您的反馈！", "Thank you for your feedback!"),
    ("survey_thanks_sorry", "谢谢您的反馈，很抱歉这次没让您满意。我们的同事会尽快联系您。", "Thank you — we are sorry we let you down. A colleague will contact you soon."),
    ("survey_required", "必答", "required"),
    ("survey_closed", "此调查已结束。", "This survey has closed."),
    ("sq_nps", "您有多大可能把我们推荐给朋友或同事？", "How likely are you to recommend us to a friend or colleague?"),
    ("sq_why", "给出这个分数的主要原因是什么？", "What is the main reason for your score?"),
    ("sq_csat", "您对这次服务满意吗？", "How satisfied are you with our service this time?"),
    ("sq_listen", "您觉得我们认真倾听您的意见了吗？", "Did we listen to you well?"),
    ("sq_comment", "还有什么想告诉我们的吗？", "Anything else you would like to tell us?"),
    ("sq_switch_2pct", "如果别家便宜 2%，您会换过去吗？", "Would you switch to another provider for a 2% lower price?"),
    ("nps_low", "0 = 完全不可能", "0 = not at all likely"),
    ("nps_high", "10 = 非常可能", "10 = extremely likely"),
    ("scale_low", "1 = 很不满意", "1 = very dissatisfied"),
    ("scale_high", "5 = 非常满意", "5 = very satisfied"),
    ("switch_yes", "会", "Yes"),
    ("switch_no", "不会", "No"),
    ("language", "English", "中文"),
    ("not_found", "没有找到", "Not found"),
    ("forbidden", "没有权限", "Not allowed"),
    ("sort", "排序", "Sort"),
    ("sort_id", "编号", "Id"),
    ("sort_name", "姓名", "Name"),
    ("sort_updated", "最近更新", "Recently updated"),
    ("add_note", "添加备注", "Add note"),
    // ---- analytics: dashboard, scores panel, segments ----
    ("analytics", "客户分析", "Analytics"),
    ("analytics_title", "客户价值分析", "Customer analytics"),
    ("segments", "客户分群", "Segments"),
    ("run_analysis", "立即运行分析", "Run analysis now"),
    ("analysis_ran", "分析已完成", "Analysis finished"),
    ("no_run", "还没有运行过分析。运行一次分析后，这里会显示 RFM 分类、ABCD 分级、生命周期、流失与客户终身价值。", "No analysis has been run yet. Run one to see RFM classes, ABCD tiers, lifecycle, churn and lifetime value here."),
    ("no_run_agent", "请联系经理或管理员运行分析。", "Ask a manager or administrator to run the analysis."),
    ("as_of", "分析基准日", "As of"),
    ("scored_customers", "已评分客户", "Scored customers"),
    ("run_at", "运行时间", "Run at"),
    ("orders_used", "使用订单数", "Orders used"),
    ("rfm_chart", "RFM 价值分类", "RFM value classes"),
    ("abcd_chart", "ABCD 价值分级", "ABCD value tiers"),
    ("lifecycle_chart", "生命周期漏斗", "Lifecycle funnel"),
    ("churn_tier_chart", "各等级流失情况", "Churn by tier"),
    ("churn_rfm_chart", "各 RFM 分类流失情况", "Churn by RFM class"),
    ("p_alive_chart", "存活概率分布", "P(alive) distribution"),
    ("clv_chart", "客户终身价值分布（元）", "CLV distribution (yuan)"),
    ("fit_report", "模型拟合报告", "Model fit report"),
    ("val_title", "模型留存期检验", "Holdout validation of the model"),
    ("val_calibration_to", "校准期截至", "Calibration up to"),
    ("val_holdout_to", "留存期截至", "Holdout up to"),
    ("val_today", "默认今天", "default today"),
    ("val_run", "运行检验", "Validate"),
    ("val_none", "还没有检验过模型：选择校准期截止日，用之后的实际购买检验模型的预测。", "The model has not been validated yet: pick a calibration end and the purchases after it will check the model's forecasts."),
    ("val_actual", "实际", "Actual"),
    ("val_predicted", "预测", "Predicted"),
    ("val_expected", "模型预期", "Expected"),
    ("val_frequency_axis", "校准期复购次数", "Repeat purchases in calibration"),
    ("val_per_customer", "留存期人均复购", "Holdout purchases per customer"),
    ("val_weekly", "每周复购", "Weekly repeat purchases"),
    ("val_cumulative", "累计复购", "Cumulative repeat purchases"),
    ("val_calibration_end", "校准期结束", "Calibration end"),
    ("val_conditional_chart", "条件期望：留存期人均复购（按校准期复购次数）", "Conditional expectations: holdout purchases per customer by calibration frequency"),
    ("val_histogram_chart", "校准期复购次数分布", "Calibration repeat purchases: customers"),
    ("val_weekly_chart", "每周复购：实际与模型", "Weekly repeat purchases: actual and model"),
    ("val_cumulative_chart", "累计复购：实际与模型", "Cumulative repeat purchases: actual and model"),
    ("val_mae", "人均绝对误差", "Mean absolute error per customer"),
    ("val_spend", "每个购买日消费额", "Spend per purchase day"),
    ("customers_n", "客户数", "Customers"),
    ("revenue_12m", "近 12 个月消费额", "Revenue, last 12 months"),
    ("revenue_share", "消费额占比", "Revenue share"),
    ("customer_share", "客户占比", "Customer share"),
    ("mean_p_alive", "平均存活概率", "Mean P(alive)"),
    ("total_clv", "终身价值合计", "Total CLV"),
    ("tier", "等级", "Tier"),
    ("churn_absolute", "绝对流失", "Absolute churn"),
    ("churn_relative", "相对流失", "Relative churn"),
    ("churn_none", "未流失", "Not churned"),
    ("not_churned", "未流失", "Not churned"),
    ("parameter", "参数", "Parameter"),
    ("estimate", "估计值", "Estimate"),
    ("std_error", "标准误", "Std. error"),
    ("log_likelihood", "对数似然", "Log-likelihood"),
    ("iterations", "迭代次数", "Iterations"),
    ("converged", "已收敛", "Converged"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
    ("not_fitted", "未拟合", "not fitted"),
    ("warnings", "提示", "Warnings"),
    ("time_unit", "时间单位", "Time unit"),
    ("unit_days", "天", "days"),
    ("unit_weeks", "周", "weeks"),
    ("horizon", "预测期", "Horizon"),
    ("clv_months", "终身价值月数", "CLV months"),
    ("bgnbd_model", "BG/NBD 购买频率模型", "BG/NBD purchase model"),
    ("gg_model", "Gamma-Gamma 消费金额模型", "Gamma-Gamma spend model"),
    ("gamma_yuan", "γ（元）", "γ (yuan)"),
    ("scores", "客户评分", "Scores"),
    ("no_scores", "该客户尚未参与分析。", "This customer has not been analysed yet."),
    ("rfm_scores", "RFM 得分", "RFM scores"),
    ("rfm_class", "RFM 分类", "RFM class"),
    ("abcd_tier", "ABCD 等级", "ABCD tier"),
    ("lifecycle", "生命周期", "Lifecycle"),
    ("churn", "流失状态", "Churn"),
    ("p_alive", "存活概率", "P(alive)"),
    ("expected_purchases", "预计购买次数", "Expected purchases"),
    ("expected_order_value", "预计客单价", "Expected order value"),
    ("clv", "客户终身价值", "CLV"),
    ("loyalty_index", "忠诚度指数", "Loyalty index"),
    ("loyalty_situation", "忠诚度矩阵", "Loyalty situation"),
    ("why", "原因", "Why"),
    ("days_n", "天", "days"),
    ("rfm_important_value", "重要价值", "Important value"),
    ("rfm_important_retain", "重要保持", "Important retain"),
    ("rfm_important_develop", "重要发展", "Important develop"),
    ("rfm_important_win_back", "重要挽留", "Important win-back"),
    ("rfm_general_value", "一般价值", "General value"),
    ("rfm_general_retain", "一般保持", "General retain"),
    ("rfm_general_develop", "一般发展", "General develop"),
    ("rfm_general_win_back", "一般挽留", "General win-back"),
    ("life_prospect", "潜在客户", "Prospect"),
    ("life_new", "新客户", "New"),
    ("life_active", "活跃客户", "Active"),
    ("life_loyal", "忠诚客户", "Loyal"),
    ("life_at_risk", "流失风险", "At risk"),
    ("life_churned", "已流失", "Churned"),
    ("life_won_back", "已挽回", "Won back"),
    ("tier_A", "A 级", "Tier A"),
    ("tier_B", "B 级", "Tier B"),
    ("tier_C", "C 级", "Tier C"),
    ("tier_D", "D 级", "Tier D"),
    ("loy_true_loyalty_rising", "真正忠诚（上升）", "True loyalty, rising"),
    ("loy_true_loyalty_falling", "真正忠诚（下降）", "True loyalty, falling"),
    ("loy_latent_loyalty_rising", "潜在忠诚（上升）", "Latent loyalty, rising"),
    ("loy_latent_loyalty_falling", "潜在忠诚（下降）", "Latent loyalty, falling"),
    ("loy_inertia_loyalty_rising", "惰性忠诚（上升）", "Inertia loyalty, rising"),
    ("loy_inertia_loyalty_falling", "惰性忠诚（下降）", "Inertia loyalty, falling"),
    ("loy_no_loyalty_rising", "不忠诚（上升）", "No loyalty, rising"),
    ("loy_no_loyalty_falling", "不忠诚（下降）", "No loyalty, falling"),
    ("segments_title", "客户分群", "Customer segments"),
    ("segment_builder", "分群规则编辑器", "Segment builder"),
    ("rule", "规则", "Rule"),
    ("rule_placeholder", "例如：rfm_class = \"重要挽留\" and p_alive < 0.5", "e.g. rfm_class = \"important_win_back\" and p_alive < 0.5"),
    ("rule_hint", "输入规则后，这里会实时显示符合条件的客户数和前 20 位客户。", "Type a rule to see the number of matching customers and the first 20 of them, live."),
    ("rule_error", "规则有误", "The rule has a problem"),
    ("rule_column", "字符位置", "at character"),
    ("matching_customers", "位客户符合条件", "matching customers"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("first_members", "前 20 位客户", "The first 20 customers"),
    ("segment_name", "分群名称", "Segment name"),
    ("description", "说明", "Description"),
    ("save_segment", "保存分群", "Save segment"),
    ("segment_saved", "分群已保存", "Segment saved"),
    ("rule_help_title", "规则写法", "How to write a rule"),
    ("rule_help", "条件写作「字段 运算符 值」，用 and、or、not 和括号组合。文本和日期加引号（\"上海\"、\"2025-01-01\"），数字不加引号，金额以元为单位。运算符：= != < <= > >= in (…) not in (…) contains、is null。完整说明见 docs/segments.md。", "Write conditions as \"field operator value\" and combine them with and, or, not and parentheses. Text and dates go in quotes (\"Shanghai\", \"2025-01-01\"), numbers do not; money is in yuan. Operators: = != < <= > >= in (…) not in (…) contains, is null. The full reference is docs/segments.md."),
    ("examples", "示例", "Examples"),
    ("rule_fields", "可用字段", "Fields"),
    ("field_type", "类型", "Type"),
    ("saved_segments", "已保存的分群", "Saved segments"),
    ("builtin_segments", "内置分群", "Built-in segments"),
    ("no_saved_segments", "还没有保存的分群。", "No saved segments yet."),
    ("use_rule", "使用此规则", "Use rule"),
    ("delete", "删除", "Delete"),
    ("personal_data", "个人信息", "Personal data"),
    ("personal_data_help", "应客户本人要求，可导出我们保存的其全部数据，或删除其个人信息（订单保留以便对账，客户匿名化）。", "At the customer's request, export everything held on them, or erase their personal data (orders stay for the books, under an anonymous customer)."),
    ("export_personal_data", "导出全部数据（JSON）", "Export all data (JSON)"),
    ("erase_personal_data", "删除个人信息", "Erase personal data"),
    ("erase_help", "不可撤销：姓名、联系方式、生日、属性、标签、备注、互动内容、联系人及变更记录中的值将被清除。", "Irreversible: name, contact details, birthday, attributes, tags, notes, interaction contents, contact people and the values in the history are cleared."),
    ("erase_confirm", "确认删除", "Confirm erasure"),
    ("possible_duplicates", "可能重复的客户", "Possible duplicates"),
    ("merge_help", "合并后，该客户的订单、互动、备注、联系人和变更记录都归入当前客户；当前客户的空字段由其补全，标签合并，联系许可取较新的一条；被合并的客户随后删除（保留记录）。", "Merging moves that customer's orders, interactions, notes, contact people and history to this customer, fills this customer's empty fields from it, unites the tags and keeps the newer consent per channel; the merged customer is then deleted (its records kept)."),
    ("shared", "相同之处", "Shared"),
    ("merge_here", "合并到此客户", "Merge into this one"),
    ("merge_confirm", "确认合并", "Confirm the merge"),
    ("v_name_city", "同城同名", "Same name and city"),
    ("v_merged", "合并了客户", "Merged in"),
    ("v_merged_into", "已合并到", "Merged into"),
    // ---- stored values shown to people (`v_` + the value; the `term` filter looks them up) ----
    // order statuses
    ("v_completed", "已完成", "Completed"),
    ("v_cancelled", "已取消", "Cancelled"),
    ("v_refunded", "已退款", "Refunded"),
    ("v_pending", "待处理", "Pending"),
    // order, interaction and consent channels (orders may carry any channel; these are the usual)
    ("v_store", "门店", "Store"),
    ("v_app", "App", "App"),
    ("v_wechat", "微信", "WeChat"),
    ("v_delivery", "外卖", "Delivery"),
    ("v_web", "网站", "Web"),
    ("v_phone", "电话", "Phone"),
    ("v_sms", "短信", "SMS"),
    ("v_email", "邮件", "Email"),
    ("v_mail", "信件", "Mail"),
    // interaction kinds
    ("v_page_view", "浏览页面", "Page view"),
    ("v_click", "点击", "Click"),
    ("v_call", "通话", "Call"),
    ("v_visit", "到店", "Visit"),
    ("v_sms_open", "打开短信", "SMS opened"),
    ("v_email_open", "打开邮件", "Email opened"),
    ("v_reply", "回复", "Reply"),
    ("v_event", "活动", "Event"),
    // where a consent came from
    ("v_import", "导入", "Import"),
    ("v_api", "接口", "API"),
    // timeline entry kinds
    ("v_order", "订单", "Order"),
    ("v_interaction", "互动", "Interaction"),
    ("v_note", "备注", "Note"),
    ("v_change", "变更", "Change"),
    ("v_pageview", "浏览页面", "Page view"),
    // profile history: fields without a label of their own
    ("v_owner_id", "客户经理", "Account manager"),
    ("v_referrer_id", "推荐人", "Referred by"),
    ("v_created", "创建", "Created"),
    ("v_deleted", "删除", "Deleted"),
    ("v_consent.sms", "短信许可", "SMS consent"),
    ("v_consent.email", "邮件许可", "Email consent"),
    ("v_consent.wechat", "微信许可", "WeChat consent"),
    ("v_consent.phone", "电话许可", "Phone consent"),
    ("v_consent.mail", "信件许可", "Mail consent"),
    ("v_promo", "促销", "promo"),
    // campaigns
    ("campaigns", "营销活动", "Campaigns"),
    ("no_campaigns", "还没有营销活动。", "No campaigns yet."),
    ("campaign_new", "新建活动", "New campaign"),
    ("campaign_name", "活动名称", "Campaign name"),
    ("campaign_channel", "渠道", "Channel"),
    ("campaign_saved_segment", "已保存的分群", "Saved segment"),
    ("campaign_rule_below", "（使用下面的规则）", "(use the rule below)"),
    ("campaign_rule", "分群规则", "Segment rule"),
    ("campaign_preferred_help", "“偏好渠道”：每位客户已同意的第一个渠道（邮件、短信、微信、信件），渠道校准上线后改为响应率最高的渠道。", "“Preferred”: each customer's first consented channel (email, SMS, WeChat, mail) until channel calibration picks the one they answer most."),
    ("campaign_template", "模板", "Template"),
    ("campaign_holdout", "对照组", "Holdout"),
    ("campaign_holdout_percent", "对照组比例 %", "Holdout %"),
    ("campaign_holdout_help", "对照组从符合条件的客户中随机抽取（随机种子会保存），不发送消息，用来衡量活动带来的提升。", "The holdout is drawn at random (the seed is stored) from the eligible audience and gets no message; it is what the lift is measured against."),
    ("campaign_window", "转化窗口（天）", "Conversion window (days)"),
    ("campaign_schedule", "发送时间", "Schedule"),
    ("campaign_send_at", "发送时间", "Send at"),
    ("campaign_schedule_help", "留空则在启动时发送；短信和微信在免打扰时段顺延。", "Empty: at launch. SMS and WeChat wait for the end of quiet hours."),
    ("campaign_at_launch", "启动时", "at launch"),
    ("campaign_review", "检查人数", "Review"),
    ("campaign_counts", "人数", "Counts"),
    ("campaign_seed", "随机种子", "Seed"),
    ("campaign_audience", "分群人数", "Audience"),
    ("campaign_global_control", "全局对照组", "Global control"),
    ("campaign_no_consent", "未同意", "No consent"),
    ("campaign_capped", "超出频次上限", "Over the cap"),
    ("campaign_queued", "待发送", "Queued"),
    ("campaign_sent", "已发送", "Sent"),
    ("campaign_failed", "失败", "Failed"),
    ("campaign_skipped", "发送时跳过", "Skipped at send"),
    ("campaign_launch", "启动活动", "Launch"),
    ("campaign_report", "效果报告", "Report"),
    ("campaign_window_open", "转化窗口尚未结束，数字仍会变化。", "The conversion window is still open; the numbers will change."),
    ("campaign_lift", "提升", "Lift"),
    ("campaign_conversion_difference", "转化率差", "Conversion difference"),
    ("campaign_relative_lift", "相对提升", "relative lift"),
    ("campaign_revenue_difference", "人均收入差", "Revenue per recipient difference"),
    ("campaign_incremental", "增量", "Incremental"),
    ("campaign_orders", "订单", "orders"),
    ("campaign_too_few", "人数太少，无法判断", "Too few to tell"),
    ("campaign_min_group", "每组至少", "each group needs at least"),
    ("campaign_responders", "响应", "Responders"),
    ("campaign_converters", "转化", "Converters"),
    ("campaign_revenue", "收入", "Revenue"),
    ("campaign_treated", "发送组", "Treated"),
    ("campaign_control", "对照组", "Control"),
    ("campaign_cumulative", "累计转化率（按天）", "Cumulative conversion by day"),
    ("campaign_day", "横轴：发送后第几天", "x: day after the send"),
    ("v_draft", "草稿", "Draft"),
    ("v_launched", "已启动", "Launched"),
    ("v_preferred", "偏好渠道", "Preferred"),
    // user roles
    ("v_admin", "管理员", "Admin"),
    ("v_manager", "主管", "Manager"),
    ("v_agent", "客户经理", "Agent"),
    // the loyalty club
    ("lc_nav", "会员", "Loyalty"),
    ("lc_card", "会员卡", "Member card"),
    ("lc_member_no", "会员号", "Member no."),
    ("lc_not_member", "尚未入会", "Not a member"),
    ("lc_enrol", "加入会员", "Enrol"),
    ("lc_tier", "等级", "Tier"),
    ("lc_no_tier", "普通会员", "No tier"),
    ("lc_to_next", "距离", "To"),
    ("lc_points_to_go", "还需积分", "points to go"),
    ("lc_top_tier", "已是最高等级", "Top tier"),
    ("lc_earned_in_period", "考核期内获得积分", "Points earned in the qualifying period"),
    ("lc_balance", "积分余额", "Balance"),
    ("lc_spendable", "可用积分", "Spendable"),
    ("lc_pending_points", "待生效积分", "Pending"),
    ("lc_debt", "欠分", "Debt"),
    ("lc_next_expiry", "最近到期", "Next expiry"),
    ("lc_none", "无", "None"),
    ("lc_ledger", "积分明细", "Ledger"),
    ("lc_kind", "类型", "Kind"),
    ("lc_points", "积分", "Points"),
    ("lc_source", "来源", "Source"),
    ("lc_reason", "原因", "Reason"),
    ("lc_redeem", "兑换", "Redeem"),
    ("lc_redeem_reward", "兑换礼品", "Redeem a reward"),
    ("lc_no_rewards", "当前没有可兑换的礼品", "No reward available now"),
    ("lc_adjust", "调整积分", "Adjust points"),
    ("lc_adjust_help", "正数为增加，负数为扣减；必须填写原因。", "Positive adds, negative takes; a reason is required."),
    ("lc_redeemed", "兑换成功", "Redeemed"),
    ("lc_adjusted", "积分已调整", "Points adjusted"),
    ("lc_programme", "会员计划", "Programme"),
    ("lc_enabled", "启用会员计划", "Programme on"),
    ("lc_point_value", "每积分价值（分）", "Point value (cents)"),
    ("lc_pending_days", "积分冻结天数", "Pending days"),
    ("lc_expiry_months", "积分有效月数（0 为永久）", "Expiry months (0: never)"),
    ("lc_expiry_end_of_month", "到期日为当月月底", "Expire at the end of the month"),
    ("lc_qualifying_months", "等级考核月数", "Qualifying months"),
    ("lc_grace_days", "降级宽限天数", "Downgrade grace days"),
    ("lc_auto_enrol", "首单自动入会", "Enrol on the first order"),
    ("lc_referral_points", "推荐奖励积分", "Referral points"),
    ("lc_referral_cap", "每月推荐奖励上限", "Referral rewards per month"),
    ("lc_earn_rules", "积分规则", "Earn rules"),
    ("lc_earn_rules_help", "每行一条：每元积分 | 品类 | 渠道 | 门店 | 倍数（可留空）", "One per line: points per yuan | category | channel | store | multiplier (may be blank)"),
    ("lc_tiers", "会员等级", "Tiers"),
    ("lc_tiers_help", "每行一级，由低到高：名称 | 考核积分 | 积分倍数 | 权益（逗号分隔）", "One per line, lowest first: name | points earned | multiplier | benefits (comma separated)"),
    ("lc_bonus_periods", "加倍积分活动", "Bonus periods"),
    ("lc_saved", "已保存", "Saved"),
    ("lc_rewards", "礼品目录", "Rewards"),
    ("lc_reward", "礼品", "Reward"),
    ("lc_stock", "库存", "Stock"),
    ("lc_unlimited", "不限", "Unlimited"),
    ("lc_cost", "成本", "Cost"),
    ("lc_active_period", "兑换期", "Active"),
    ("lc_tiers_allowed", "可兑换等级", "Tiers allowed"),
    ("lc_all_tiers", "全部", "All"),
    ("lc_new_reward", "新增礼品", "New reward"),
    ("lc_image_url", "图片地址", "Image URL"),
    ("lc_liability", "积分负债", "Liability"),
    ("lc_outstanding", "未兑积分", "Outstanding points"),
    ("lc_outstanding_value", "未兑积分价值", "Outstanding value"),
    ("lc_breakage", "历史逾期失效率", "Breakage rate"),
    ("lc_expected_liability", "预计负债", "Expected liability"),
    ("lc_liability_help", "预计负债 = 未兑积分 × (1 − 失效率) × 每积分价值（IFRS 15 B39–B43）", "Expected liability = outstanding × (1 − breakage) × point value (IFRS 15 B39–B43)"),
    ("lc_by_expiry", "按到期月份", "By expiry month"),
    ("lc_development", "按发放月份（发展表）", "By issue month (development table)"),
    ("lc_month", "月份", "Month"),
    ("lc_issued", "发放", "Issued"),
    ("lc_redeemed_col", "已兑换", "Redeemed"),
    ("lc_expired", "已失效", "Expired"),
    ("lc_reversed", "已冲回", "Reversed"),
    ("lc_export_csv", "导出 CSV", "Export CSV"),
    ("lc_referrals", "推荐报告", "Referrals"),
    ("lc_group", "群体", "Group"),
    ("lc_referred", "被推荐客户", "Referred customers"),
    ("lc_others", "其他客户", "Others"),
    ("lc_mean_p_alive", "平均存活概率", "Mean P(alive)"),
    ("lc_mean_spend", "平均消费额", "Mean spend"),
    ("lc_mean_loyalty", "平均忠诚度指数", "Mean loyalty index"),
    ("lc_rewards_paid", "已发放奖励", "Rewards paid"),
    ("lc_rewards_refused", "已拒绝（防作弊/上限）", "Refused (fraud guards, cap)"),
    ("lc_rewards_reversed", "已冲回", "Reversed"),
    ("lc_customers_n", "客户数", "Customers"),
    ("lc_no_scores", "尚无分析结果：请先运行分析。", "No analysis yet: run the analysis first."),
    ("v_earn", "获得", "earned"),
    ("v_redeem", "兑换", "redeemed"),
    ("v_expire", "过期", "expired"),
    ("v_adjust", "调整", "adjusted"),
    ("v_reverse", "冲回", "reversed"),
    ("v_ordered", "已下单", "ordered"),
    ("v_handed_over", "已交付", "handed over"),
    ("lc_status_active", "有效", "active"),
    ("lc_status_suspended", "已暂停", "suspended"),
    ("lc_status_closed", "已关闭", "closed"),
    ("cts_title", "服务成本", "Cost to serve"),
    ("cts_help", "期间内：毛利 = 消费额 × 品类毛利率；服务成本 = 工单（每单 + 每处理分钟）+ 补偿 + 消息（按渠道单价）+ 已兑换礼品成本；利润 = 毛利 − 服务成本。矩阵按毛利与服务成本的中位数划分。", "In the period: margin = spend × the category's margin rate; cost to serve = tickets (per ticket + per handling minute) + compensations + messages (unit cost per channel) + rewards redeemed at cost; profit = margin − cost. The matrix splits at the medians of margin and cost."),
    ("cts_margin", "毛利", "Margin"),
    ("cts_cost", "服务成本", "Cost to serve"),
    ("cts_profit", "利润", "Profit"),
    ("cts_revenue", "期间消费额", "Revenue in the period"),
    ("cts_quadrant", "盈利矩阵", "Profitability matrix"),
    ("cts_by_tier", "按 ABCD 等级", "By ABCD tier"),
    ("cts_high_value", "高价值", "High value"),
    ("cts_low_value", "低价值", "Low value"),
    ("cts_high_cost", "高服务成本", "High cost to serve"),
    ("cts_low_cost", "低服务成本", "Low cost to serve"),
    ("cts_thresholds", "划分点（中位数）", "Split (medians)"),
    ("cts_period_from", "期间起始", "Period from"),
    ("cts_none", "尚无服务成本数据：请先运行分析。", "No cost-to-serve figures yet: run the analysis."),
    ("cts_q_carriage_trade", "贵宾型（高价值·高成本）", "Carriage trade (high value, high cost)"),
    ("cts_q_passive", "被动型（高价值·低成本）", "Passive (high value, low cost)"),
    ("cts_q_aggressive", "进取型（低价值·高成本）", "Aggressive (low value, high cost)"),
    ("cts_q_bargain_basement", "廉价型（低价值·低成本）", "Bargain basement (low value, low cost)"),
    // ---- score history, cohorts and trends (issue 18 §2, §3) ----
    ("tier_none", "无等级", "No tier"),
    ("history_title", "客户群正在发生哪些变化", "How the customer base is changing"),
    ("migration_chart", "ABCD 等级迁移（上次分析 → 本次分析）", "ABCD tier migration (previous run → latest run)"),
    ("migration_hint", "点击一条流向，即可打开这些客户组成的分群。", "Click a flow to open those customers as a segment."),
    ("migration_none", "至少运行两次分析后，这里会显示客户在等级之间的迁移。", "After two analysis runs, this shows how customers moved between tiers."),
    ("cohort_heatmap", "同期群：各月仍有购买的客户比例", "Cohorts: share of customers buying in each month"),
    ("cohort_revenue", "同期群：人均累计消费（元）", "Cohorts: cumulative revenue per customer (yuan)"),
    ("trends_customers", "月度客户趋势", "Customers by month"),
    ("trends_revenue", "月度订单与消费额", "Orders and revenue by month"),
    ("trends_churn", "A/B 类客户流失率（%）", "Churn rate of A and B customers (%)"),
    ("new_customers", "新客户", "New customers"),
    ("active_customers", "活跃客户", "Active customers"),
    ("repeat_customers", "回头客", "Repeat customers"),
    ("orders_n", "订单数", "Orders"),
    ("revenue_yuan", "消费额（元）", "Revenue (yuan)"),
    ("churn_rate", "流失率", "Churn rate"),
    ("months_since_first", "首购后第几个月", "Months since the first order"),
    ("cohort", "同期群", "Cohort"),
    ("share_active", "购买比例", "Share buying"),
    ("revenue_per_customer", "人均累计消费", "Revenue per customer"),
    ("segment_sizes", "历次分析时的分群人数", "Size at each analysis run"),
    ("analysis_run", "分析", "Run"),
];

/// The labels of `lang`, keyed by label id.
pub fn labels(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    LABELS.iter().map(|(k, zh, en)| (*k, if lang == Lang::Zh { *zh } else { *en })).collect()
}

/// The label of an analytics key in `lang`: `prefix` is `rfm`, `life`, `tier`, `loy` or `churn`
/// (`rfm` + `important_value` → 重要价值). An unknown key is shown as it is.
pub fn key_label(lang: Lang, prefix: &str, key: &str) -> String {
    let id = format!("{prefix}_{key}");
    LABELS
        .iter()
        .find(|(k, _, _)| *k == id)
        .map(|(_, zh, en)| if lang == Lang::Zh { (*zh).to_owned() } else { (*en).to_owned() })
        .unwrap_or_else(|| key.to_owned())
}

/// A stored value as people read it: each part of a `" · "`-joined value (`completed · wechat`)
/// by its `v_` label, else by a field's own label (`mobile` → 手机), else as stored. `label` looks
/// a key up in the page's labels. Values the data brings (channels, statuses) are open-ended, so
/// an unknown one stays readable.
pub fn term(value: &str, label: impl Fn(&str) -> Option<String>) -> String {
    value
        .split(" · ")
        .map(|part| label(&format!("v_{part}")).or_else(|| label(part)).unwrap_or_else(|| part.to_owned()))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The importer's reasons for rejecting a row (English, from the store), in Chinese: (the
/// reason's fixed start, its translation). What follows the fixed start — the offending value,
/// a row number — is kept as it is. Longer starts come before shorter ones that they extend.
const IMPORT_REASONS_ZH: &[(&str, &str)] = &[
    ("unknown customer (import customers first)", "未知客户（请先导入客户）"),
    ("unknown referrer customer", "未知的推荐人客户"),
    ("a customer cannot refer themselves", "客户不能推荐自己"),
    ("this customer was deleted", "该客户已被删除"),
    ("this customer was merged into customer ", "该客户已合并到客户 "),
    ("this order id belongs to another customer", "该订单编号属于另一位客户"),
    ("this interaction id belongs to another customer", "该互动编号属于另一位客户"),
    ("this contact id belongs to another customer", "该联系人编号属于另一位客户"),
    ("duplicate id in this file (first at row ", "文件中编号重复（首次出现在第 "),
    ("no user with this email (add the user first)", "没有使用该邮箱的用户（请先添加用户）"),
    ("name is longer than 200 characters", "名称超过 200 个字符"),
    ("at most 2 decimals", "金额最多两位小数"),
    ("amount too large", "金额过大"),
    ("must not be negative (leave refunds out or give them a status)", "不能为负数（退款请不要导入，或标明状态）"),
    ("must not be negative (record refunds with status refunded)", "不能为负数（退款请用状态 refunded 记录）"),
    ("must not be negative", "不能为负数"),
    ("not an amount", "不是有效金额"),
    ("not an email address", "不是有效的邮箱地址"),
    ("not a mainland China mobile number (11 digits starting 13–19)", "不是有效的中国大陆手机号（13–19 开头的 11 位数字）"),
    (
        "not a date or time (expected e.g. 2025-03-04 or 2025-03-04 18:23:00)",
        "不是有效的日期或时间（例如 2025-03-04 或 2025-03-04 18:23:00）",
    ),
    ("not a date (expected YYYY-MM-DD)", "不是有效的日期（格式 YYYY-MM-DD）"),
    ("not a time (expected e.g. 2025-03-04 18:23:00 or RFC 3339)", "不是有效的时间（例如 2025-03-04 18:23:00 或 RFC 3339）"),
    ("not a yes/no value", "不是是/否值"),
    ("time does not exist in ", "该时间在此时区不存在："),
    ("gender must be male, female or unknown", "性别须为男、女或未知"),
    ("kind must be person or organisation", "类型须为个人或企业"),
    ("kind must be one of ", "类型须为以下之一："),
    ("status must be completed, cancelled, refunded or pending", "状态须为 completed、cancelled、refunded 或 pending"),
    ("currency must be a 3-letter code like CNY", "币种须为 3 个字母的代码，如 CNY"),
    ("not JSON", "不是有效的 JSON"),
    ("not valid GB18030 (if the file is in another encoding, give --encoding)", "不是有效的 GB18030（如文件为其他编码，请指定编码）"),
    ("a line must hold one JSON object", "每行须为一个 JSON 对象"),
    ("required", "必填"),
];

/// An import rejection's reason in `lang` (the store writes English; see [`IMPORT_REASONS_ZH`]).
/// A reason without a translation is shown as it is.
pub fn import_reason(lang: Lang, reason: &str) -> String {
    if lang == Lang::En {
        return reason.to_owned();
    }
    // "expected 8 fields, found 9 (an unquoted comma or a missing quote?)"
    if let Some((want, found)) = reason.strip_prefix("expected ").and_then(|r| r.split_once(" fields, found ")) {
        if let Some(found) = found.split(' ').next() {
            return format!("应有 {want} 个字段，实际 {found} 个（可能有未加引号的逗号，或缺少引号）");
        }
    }
    // "not valid UTF-8 (if the file is in another encoding, give --encoding): byte 0xFF at position 4"
    if let Some((byte, at)) = reason
        .strip_prefix("not valid UTF-8 (if the file is in another encoding, give --encoding): byte ")
        .and_then(|r| r.split_once(" at position "))
    {
        return format!("不是有效的 UTF-8（第 {at} 个字节 {byte}；如文件为其他编码，请指定编码）");
    }
    match IMPORT_REASONS_ZH.iter().find(|(en, _)| reason.starts_with(en)) {
        Some((en, zh)) => {
            let rest = &reason[en.len()..];
            // ": \"x\"" → "：\"x\""; the closing parenthesis of "(first at row 3)" → "行）".
            let rest = rest.strip_prefix(": ").map(|r| format!("：{r}")).unwrap_or_else(|| rest.to_owned());
            let rest = if en.ends_with("(first at row ") { rest.replacen(')', " 行）", 1) } else { rest };
            format!("{zh}{rest}")
        }
        None => reason.to_owned(),
    }
}

/// Cents as yuan with thousands separators: `123456` → `¥1,234.56`, `-5` → `-¥0.05`.
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    let whole = (a / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}¥{grouped}.{:02}", a % 100)
}

/// Fractional cents (model outputs such as CLV) as yuan, rounded to the cent; `—` when not finite.
pub fn yuan_f(cents: f64) -> String {
    if cents.is_finite() && cents.abs() < 9.0e16 {
        yuan(cents.round() as i64)
    } else {
        "—".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_groups_thousands_and_keeps_the_sign() {
        assert_eq!(yuan(0), "¥0.00");
        assert_eq!(yuan(35650), "¥356.50");
        assert_eq!(yuan(123456), "¥1,234.56");
        assert_eq!(yuan(100_000_000), "¥1,000,000.00");
        assert_eq!(yuan(-5), "-¥0.05");
        assert_eq!(yuan_f(1234.4), "¥12.34");
        assert_eq!(yuan_f(f64::NAN), "—");
    }

    #[test]
    fn terms_translate_each_known_part_and_keep_the_rest() {
        let zh = labels(Lang::Zh);
        let en = labels(Lang::En);
        let (zh, en) = (|k: &str| zh.get(k).map(|v| v.to_string()), |k: &str| en.get(k).map(|v| v.to_string()));
        assert_eq!(term("completed · wechat", zh), "已完成 · 微信");
        assert_eq!(term("sms_open · sms", en), "SMS opened · SMS");
        assert_eq!(term("mobile", zh), "手机", "a field's own label");
        assert_eq!(term("consent.sms", zh), "短信许可");
        assert_eq!(term("refunded · 美团", zh), "已退款 · 美团", "an unknown channel stays as stored");
        assert_eq!(term("attr.vip_level", zh), "attr.vip_level");
        assert_eq!(term("", zh), "");
    }

    #[test]
    fn import_reasons_read_in_chinese_with_their_values() {
        assert_eq!(import_reason(Lang::Zh, "unknown customer (import customers first)"), "未知客户（请先导入客户）");
        assert_eq!(import_reason(Lang::Zh, "not an email address: \"a b@c\""), "不是有效的邮箱地址：\"a b@c\"");
        assert_eq!(import_reason(Lang::Zh, "duplicate id in this file (first at row 3)"), "文件中编号重复（首次出现在第 3 行）");
        assert_eq!(import_reason(Lang::Zh, "must not be negative"), "不能为负数");
        assert_eq!(
            import_reason(Lang::Zh, "expected 8 fields, found 9 (an unquoted comma or a missing quote?)"),
            "应有 8 个字段，实际 9 个（可能有未加引号的逗号，或缺少引号）"
        );
        assert_eq!(import_reason(Lang::Zh, "required"), "必填");
        assert_eq!(import_reason(Lang::Zh, "this customer was merged into customer #7"), "该客户已合并到客户 #7");
        assert_eq!(import_reason(Lang::Zh, "something new"), "something new", "untranslated stays readable");
        assert_eq!(
            import_reason(Lang::Zh, "not valid UTF-8 (if the file is in another encoding, give --encoding): byte 0xFF at position 4"),
            "不是有效的 UTF-8（第 4 个字节 0xFF；如文件为其他编码，请指定编码）"
        );
        assert_eq!(import_reason(Lang::En, "at most 2 decimals"), "at most 2 decimals");
    }

    #[test]
    fn key_labels_and_lang_codes() {
        assert_eq!(key_label(Lang::Zh, "rfm", "important_win_back"), "重要挽留");
        assert_eq!(key_label(Lang::En, "life", "at_risk"), "At risk");
        assert_eq!(key_label(Lang::En, "tier", "Z"), "Z");
        assert_eq!(Lang::from_code("en-US"), Some(Lang::En));
        assert_eq!(Lang::from_code("zh_CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_code("fr"), None);
    }

    #[test]
    fn every_analytics_key_has_a_label() {
        use patron_analytics::lifecycle::LifecycleStage;
        use patron_analytics::rfm::RfmClass;
        for c in [
            RfmClass::ImportantValue,
            RfmClass::ImportantRetain,
            RfmClass::ImportantDevelop,
            RfmClass::ImportantWinBack,
            RfmClass::GeneralValue,
            RfmClass::GeneralRetain,
            RfmClass::GeneralDevelop,
            RfmClass::GeneralWinBack,
        ] {
            assert_eq!(key_label(Lang::Zh, "rfm", c.key()), c.label_zh());
        }
        for s in [
            LifecycleStage::Prospect,
            LifecycleStage::New,
            LifecycleStage::Active,
            LifecycleStage::Loyal,
            LifecycleStage::AtRisk,
            LifecycleStage::Churned,
            LifecycleStage::WonBack,
        ] {
            assert_eq!(key_label(Lang::Zh, "life", s.key()), s.label_zh());
        }
    }

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
