//! The generator: configuration, per-customer generation, chunks.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp1, Gamma, Poisson};

use crate::clock::Clock;
use crate::model::*;
use crate::params::{ModelParams, TrueParams};
use crate::util::{mix, permute, unit, Weighted};
use crate::vocab::*;
use crate::Error;

/// Largest supported number of customers (keeps mobiles of customers and contacts unique).
pub const MAX_CUSTOMERS: u64 = 500_000_000;
/// Safety cap on the purchases of one customer.
const MAX_PURCHASES: u32 = 100_000;
/// Share of completed purchases followed by an extra refunded or cancelled order.
const EXTRA_ORDER_SHARE: f64 = 0.015;

/// What to generate. Everything that changes the output is here; the same config (and
/// `chunk_size`/`parallel`, which never change the output) gives byte-identical files.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Number of customers (people and organisations, prospects included).
    pub customers: u64,
    pub seed: u64,
    /// First day of the observation period (business time zone).
    pub start: NaiveDate,
    /// Last day of the observation period, inclusive; nothing happens after it.
    pub end: NaiveDate,
    /// Account-manager emails; when non-empty, organisations and high-value people get an owner.
    pub owners: Vec<String>,
    pub params: TrueParams,
    /// Share of customers who never purchase (default 0.10).
    pub prospect_share: f64,
    /// Share of organisations (default 0.03).
    pub organisation_share: f64,
    /// Share of customers with a referrer (default 0.08).
    pub referral_share: f64,
    /// People whose completed spend over the period reaches this get an owner (default ¥3,000).
    pub high_value_cents: i64,
    /// Also write `truth.csv` (latent λ, p, ν, alive flag per customer) — for model checks.
    pub write_truth: bool,
    /// Customers per chunk (memory/parallelism granularity; does not change the output).
    pub chunk_size: u64,
    /// Generate chunks on the rayon pool (does not change the output).
    pub parallel: bool,
}

impl GeneratorConfig {
    /// Defaults: period 2023-01-01 … 2026-06-30, no owners, [`TrueParams::DEFAULT`].
    pub fn new(customers: u64, seed: u64) -> Self {
        GeneratorConfig {
            customers,
            seed,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or(NaiveDate::MIN),
            end: NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or(NaiveDate::MIN),
            owners: Vec::new(),
            params: TrueParams::DEFAULT,
            prospect_share: 0.10,
            organisation_share: 0.03,
            referral_share: 0.08,
            high_value_cents: 300_000,
            write_truth: false,
            chunk_size: 10_000,
            parallel: true,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.customers > MAX_CUSTOMERS {
            return bad(format!("at most {MAX_CUSTOMERS} customers are supported"));
        }
        if self.end < self.start {
            return bad(format!("end {} is before start {}", self.end, self.start));
        }
        for (name, v) in [
            ("prospect_share", self.prospect_share),
            ("organisation_share", self.organisation_share),
            ("referral_share", self.referral_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be within [0, 1], got {v}"));
            }
        }
        if self.chunk_size == 0 {
            return bad("chunk_size must be > 0".into());
        }
        self.params.validate().map_err(Error::Config)
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self::new(1_000, 42)
    }
}

struct Segment {
    params: ModelParams,
    lambda: Gamma<f64>,
    dropout: Beta<f64>,
    nu: Gamma<f64>,
    promo: Beta<f64>,
    categories: Weighted,
    channels: Weighted,
}

impl Segment {
    fn new(params: ModelParams, org: bool) -> Result<Segment, Error> {
        let e = |m: String| Error::Config(m);
        Ok(Segment {
            params,
            lambda: Gamma::new(params.r, 1.0 / params.alpha).map_err(|x| e(format!("r/alpha: {x}")))?,
            dropout: Beta::new(params.a, params.b).map_err(|x| e(format!("a/b: {x}")))?,
            nu: Gamma::new(params.q, 1.0 / params.gamma).map_err(|x| e(format!("q/gamma: {x}")))?,
            promo: Beta::new(1.0, if org { 6.0 } else { 3.0 }).map_err(|x| e(x.to_string()))?,
            categories: Weighted::new(CATEGORIES.iter().map(|c| f64::from(if org { c.2 } else { c.1 }))),
            channels: Weighted::new(CHANNELS.iter().map(|c| f64::from(if org { c.2 } else { c.1 }))),
        })
    }
}

// Hash keys for the per-index decisions that other customers need to know (prospect,
// organisation) and for the bijections.
const K_PROSPECT: u64 = 1;
const K_ORG: u64 = 2;
const K_MOBILE: u64 = 3;
const K_QQ: u64 = 4;
const K_EMAIL: u64 = 5;
const K_WECHAT: u64 = 6;
const K_OWNER: u64 = 7;

/// A configured generator (holds the precomputed seasonal clock and tables). Cheap to share
/// between threads.
pub struct Generator {
    cfg: GeneratorConfig,
    clock: Clock,
    key: u64,
    person: Segment,
    org: Segment,
    surnames: Weighted,
    cities: Weighted,
    kinds: Weighted,
    domains: Weighted,
    mobile_domain: u64,
    email_domain: u64,
}

/// Per-customer tastes used while generating their orders.
struct Prefs {
    /// (category index, cumulative weight)
    cats: Vec<(usize, f64)>,
    main_channel: usize,
    main_share: f64,
    home_store: &'static str,
    promo: f64,
}

impl Generator {
    pub fn new(cfg: &GeneratorConfig) -> Result<Generator, Error> {
        cfg.validate()?;
        let mut email_domain = 10_000u64;
        while email_domain < cfg.customers.saturating_mul(10) {
            email_domain *= 10;
        }
        Ok(Generator {
            clock: Clock::new(cfg.start, cfg.end),
            key: mix(cfg.seed ^ 0x7061_7472_6F6E), // "patron"
            person: Segment::new(cfg.params.person, false)?,
            org: Segment::new(cfg.params.organisation, true)?,
            surnames: Weighted::new(SURNAMES.iter().map(|s| f64::from(s.2))),
            cities: Weighted::new(CITIES.iter().map(|c| f64::from(c.2))),
            kinds: Weighted::new(INTERACTION_KINDS.iter().map(|k| f64::from(k.1))),
            domains: Weighted::new(EMAIL_DOMAINS.iter().map(|d| f64::from(d.1))),
            mobile_domain: MOBILE_PREFIXES.len() as u64 * 100_000_000,
            email_domain,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// Effective (seasonality-weighted) days between two times inside the period: the BG/NBD
    /// "age" to use with [`ModelParams::expected_repeat_purchases`].
    pub fn effective_days(&self, from: NaiveDateTime, to: NaiveDateTime) -> f64 {
        let c = &self.clock;
        c.effective_days(c.hours_since_start(to)) - c.effective_days(c.hours_since_start(from))
    }

    fn hash(&self, k: u64, i: u64) -> u64 {
        mix(self.key ^ mix(i.wrapping_mul(16).wrapping_add(k)))
    }

    /// Whether customer `index` is a prospect (never purchases).
    pub fn is_prospect(&self, index: u64) -> bool {
        unit(self.hash(K_PROSPECT, index)) < self.cfg.prospect_share
    }

    /// Whether customer `index` is an organisation.
    pub fn is_organisation(&self, index: u64) -> bool {
        unit(self.hash(K_ORG, index)) < self.cfg.organisation_share
    }

    /// The customers `range` (clamped to the configured count) with their contacts, orders and
    /// interactions, in output order.
    pub fn chunk(&self, range: Range<u64>) -> Chunk {
        let range = range.start.min(self.cfg.customers)..range.end.min(self.cfg.customers);
        let n = (range.end - range.start) as usize;
        let mut out = Chunk {
            customers: Vec::with_capacity(n),
            contacts: Vec::new(),
            orders: Vec::with_capacity(n * 8),
            interactions: Vec::with_capacity(n * 4),
        };
        for i in range {
            self.customer(i, &mut out);
        }
        out
    }

    fn rng(&self, index: u64) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        for (k, part) in seed.chunks_exact_mut(8).enumerate() {
            part.copy_from_slice(&mix(self.key.wrapping_add(k as u64)).to_le_bytes());
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(index);
        rng
    }

    fn customer(&self, i: u64, out: &mut Chunk) {
        let mut rng = self.rng(i);
        let rng = &mut rng;
        let org = self.is_organisation(i);
        let prospect = self.is_prospect(i);
        let seg = if org { &self.org } else { &self.person };
        let lambda: f64 = seg.lambda.sample(rng).max(1e-12);
        let dropout: f64 = seg.dropout.sample(rng);
        let nu: f64 = seg.nu.sample(rng).max(1e-12);

        // Acquisition: customers arrive in index order, with the seasonal intensity.
        let total = self.clock.total_effective_days();
        let tau0 = (i as f64 + rng.gen::<f64>()) / self.cfg.customers as f64 * total;
        let h0 = self.clock.hours_at(tau0);

        let city_i = self.cities.pick(rng);
        let (city, city_py, _, stores) = CITIES[city_i];
        let prefs = self.prefs(seg, stores, rng);

        // Purchases: BG/NBD in effective time, Gamma-Gamma amounts.
        let first_order = out.orders.len();
        let mut alive = true;
        let mut purchases = 0u32;
        let mut completed_cents = 0i64;
        if !prospect {
            let spend = Gamma::new(seg.params.p, 1.0 / nu).ok();
            let mut tau = tau0;
            loop {
                let t = self.clock.datetime(self.clock.hours_at(tau));
                let z = spend.as_ref().map_or(1.0, |g| g.sample(rng));
                let o = self.order(i, t, z, OrderStatus::Completed, org, &prefs, stores, rng);
                completed_cents += o.amount_cents;
                out.orders.push(o);
                purchases += 1;
                if rng.gen::<f64>() < EXTRA_ORDER_SHARE {
                    let status = if rng.gen::<f64>() < 2.0 / 3.0 { OrderStatus::Refunded } else { OrderStatus::Cancelled };
                    let day_end = t.date().and_hms_opt(23, 59, 59).unwrap_or(t);
                    let later = (t + Duration::seconds(rng.gen_range(300..10_800))).min(day_end);
                    let z = spend.as_ref().map_or(1.0, |g| g.sample(rng));
                    out.orders.push(self.order(i, later, z, status, org, &prefs, stores, rng));
                }
                if purchases > 1 && rng.gen::<f64>() < dropout {
                    alive = false;
                    break;
                }
                tau += rng.sample::<f64, _>(Exp1) / lambda;
                if tau >= total || purchases >= MAX_PURCHASES {
                    break;
                }
            }
            out.orders[first_order..].sort_by_key(|o| o.ordered_at);
        }
        let first_purchase_at = out.orders.get(first_order).map(|o| o.ordered_at);

        // Registration: at the first purchase (at the till) or some days before it.
        let start_dt = self.clock.start();
        let created_at = match first_purchase_at {
            None => self.clock.datetime(h0),
            Some(first) => {
                let back =
                    if rng.gen::<f64>() < 0.75 { rng.gen_range(0..1800) } else { (rng.sample::<f64, _>(Exp1) * 15.0 * 86_400.0) as i64 };
                // never before the period: wrap into [start, first]
                let room = (first - start_dt).num_seconds().max(0);
                first - Duration::seconds(if back <= room { back } else { back % (room + 1) })
            }
        };

        // Identity.
        let (name, pinyin, gender) = if org {
            let (b1, p1) = BRAND_CHARS[rng.gen_range(0..BRAND_CHARS.len())];
            let (b2, p2) = BRAND_CHARS[rng.gen_range(0..BRAND_CHARS.len())];
            let (ind, ind_py) = INDUSTRIES[rng.gen_range(0..INDUSTRIES.len())];
            (format!("{city}{b1}{b2}{ind}有限公司"), format!("{p1}{p2}-{ind_py}.com"), None)
        } else {
            let x: f64 = rng.gen();
            let gender = if x < 0.49 {
                Gender::Male
            } else if x < 0.98 {
                Gender::Female
            } else {
                Gender::Unknown
            };
            let (n, p) = self.person_name(gender, rng);
            (n, p, Some(gender))
        };
        let has_mobile = rng.gen::<f64>() < if org { 0.4 } else { 0.97 };
        let mobile = has_mobile.then(|| self.mobile(i));
        let email = if org {
            (rng.gen::<f64>() < 0.8).then(|| format!("info.{city_py}@{pinyin}"))
        } else if rng.gen::<f64>() < 0.4 {
            let domain = EMAIL_DOMAINS[self.domains.pick(rng)].0;
            if domain == "qq.com" && rng.gen::<f64>() < 0.6 {
                Some(format!("{}@qq.com", 10_000 + permute(i, 4_000_000_000, self.key ^ K_QQ)))
            } else {
                Some(format!("{pinyin}{}@{domain}", permute(i, self.email_domain, self.key ^ K_EMAIL)))
            }
        } else {
            None
        };
        let wechat_id = (!org && rng.gen::<f64>() < 0.55).then(|| {
            let mut v = permute(i, 36u64.pow(10), self.key ^ K_WECHAT);
            let mut s = *b"wxid_0000000000";
            for k in (5..15).rev() {
                s[k] = b"0123456789abcdefghijklmnopqrstuvwxyz"[(v % 36) as usize];
                v /= 36;
            }
            String::from_utf8_lossy(&s).into_owned()
        });
        let birthday = if !org && rng.gen::<f64>() < 0.8 {
            let age = 18 + (rng.gen::<f64>().powf(1.6) * 52.0) as i32;
            NaiveDate::from_yo_opt(self.cfg.start.year() - age, rng.gen_range(1..=365))
        } else {
            None
        };
        let consent_sms = mobile.is_some() && rng.gen::<f64>() < if org { 0.9 } else { 0.85 };
        let consent_email = email.is_some() && rng.gen::<f64>() < if org { 0.9 } else { 0.5 };
        let consent_wechat = wechat_id.is_some() && rng.gen::<f64>() < 0.65;

        let mut referrer = None;
        if i > 0 && rng.gen::<f64>() < self.cfg.referral_share {
            for _ in 0..8 {
                let j = rng.gen_range(0..i);
                if !self.is_prospect(j) && !self.is_organisation(j) {
                    referrer = Some(j);
                    break;
                }
            }
        }

        let tags = self.tags(org, &prefs, rng);
        let owner = (!self.cfg.owners.is_empty() && (org || completed_cents >= self.cfg.high_value_cents))
            .then(|| (self.hash(K_OWNER, i) % self.cfg.owners.len() as u64) as usize);

        if org {
            let n = match rng.gen::<f64>() {
                x if x < 0.5 => 1,
                x if x < 0.85 => 2,
                _ => 3,
            };
            for k in 0..n {
                out.contacts.push(self.contact(i, k, &pinyin, rng));
            }
        }

        // Interactions: a few, more for active buyers, spread over [registration, end].
        let n_orders = (out.orders.len() - first_order) as f64;
        let mean = (1.0 + 0.25 * n_orders).min(15.0);
        let n_int = Poisson::new(mean).map_or(0.0, |p| p.sample(rng)).min(40.0) as usize;
        let first_int = out.interactions.len();
        let tau_created = self.clock.effective_days(self.clock.hours_since_start(created_at));
        for _ in 0..n_int {
            let tau = tau_created + rng.gen::<f64>() * (total - tau_created);
            let t = self.clock.datetime(self.clock.hours_at(tau)).max(created_at);
            let ctx = (mobile.is_some() && consent_sms, email.is_some() && consent_email, wechat_id.is_some());
            out.interactions.push(self.interaction(i, t, ctx, &prefs, city_py, rng));
        }
        out.interactions[first_int..].sort_by_key(|x| x.occurred_at);

        out.customers.push(Customer {
            index: i,
            kind: if org { CustomerKind::Organisation } else { CustomerKind::Person },
            name,
            mobile,
            email,
            wechat_id,
            gender,
            birthday,
            city,
            tags,
            owner,
            referrer,
            consent_sms,
            consent_email,
            consent_wechat,
            created_at,
            truth: Truth {
                prospect,
                lambda,
                dropout,
                nu,
                alive_at_end: alive,
                first_purchase_at,
                effective_age_days: first_purchase_at.map_or(0.0, |f| total - self.clock.effective_days(self.clock.hours_since_start(f))),
                purchases,
            },
        });
    }

    fn prefs(&self, seg: &Segment, stores: &'static [&'static str], rng: &mut ChaCha8Rng) -> Prefs {
        // Breadth: 1 + Binomial(4, 0.35) categories, weighted by random tastes.
        let breadth = 1 + (0..4).filter(|_| rng.gen::<f64>() < 0.35).count();
        let mut cats: Vec<(usize, f64)> = Vec::with_capacity(breadth);
        let mut sum = 0.0;
        for _ in 0..breadth * 3 {
            if cats.len() == breadth {
                break;
            }
            let c = seg.categories.pick(rng);
            if cats.iter().all(|&(x, _)| x != c) {
                sum += rng.sample::<f64, _>(Exp1) + 0.05;
                cats.push((c, sum));
            }
        }
        Prefs {
            cats,
            main_channel: seg.channels.pick(rng),
            main_share: rng.gen_range(0.5..0.95),
            home_store: stores[rng.gen_range(0..stores.len())],
            promo: seg.promo.sample(rng),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn order(
        &self,
        i: u64,
        t: NaiveDateTime,
        z: f64,
        status: OrderStatus,
        org: bool,
        prefs: &Prefs,
        stores: &'static [&'static str],
        rng: &mut ChaCha8Rng,
    ) -> Order {
        let seg = if org { &self.org } else { &self.person };
        let total = prefs.cats[prefs.cats.len() - 1].1;
        let x = rng.gen::<f64>() * total;
        let cat = prefs.cats.iter().find(|c| x < c.1).unwrap_or(&prefs.cats[prefs.cats.len() - 1]).0;
        let (category, _, _, products, max_qty) = CATEGORIES[cat];
        let channel = if cat == CAT_TAKEAWAY {
            "delivery"
        } else if rng.gen::<f64>() < prefs.main_share {
            CHANNELS[prefs.main_channel].0
        } else {
            CHANNELS[seg.channels.pick(rng)].0
        };
        let store = if channel == "web" || (channel != "store" && (cat == CAT_GIFTCARD || cat == CAT_RETAIL)) {
            ONLINE_STORE
        } else {
            let y: f64 = rng.gen();
            if y < 0.85 {
                prefs.home_store
            } else if y < 0.97 {
                stores[rng.gen_range(0..stores.len())]
            } else {
                let other = CITIES[self.cities.pick(rng)].3;
                other[rng.gen_range(0..other.len())]
            }
        };
        let amount_cents = ((z * 100.0).round() as i64).max(1);
        let promo = rng.gen::<f64>() < prefs.promo;
        let discount_cents = if promo {
            let pct = 5 * rng.gen_range(2..=6i64); // 10–30 % off the list price
            (amount_cents * pct + (100 - pct) / 2) / (100 - pct)
        } else {
            0
        };
        let quantity = if org && max_qty > 6 {
            rng.gen_range(10..=max_qty)
        } else if max_qty > 1 && rng.gen::<f64>() < 0.3 {
            rng.gen_range(2..=max_qty)
        } else {
            1
        };
        Order {
            customer_index: i,
            ordered_at: t,
            amount_cents,
            discount_cents,
            channel,
            store,
            status,
            category,
            product: products[rng.gen_range(0..products.len())],
            quantity,
            promo,
        }
    }

    fn person_name(&self, gender: Gender, rng: &mut ChaCha8Rng) -> (String, String) {
        let (s, s_py, _) = SURNAMES[self.surnames.pick(rng)];
        let chars = match gender {
            Gender::Male => MALE_CHARS,
            Gender::Female => FEMALE_CHARS,
            Gender::Unknown if rng.gen::<bool>() => MALE_CHARS,
            Gender::Unknown => FEMALE_CHARS,
        };
        let (mut name, mut py) = (String::from(s), String::from(s_py));
        for _ in 0..if rng.gen::<f64>() < 0.3 { 1 } else { 2 } {
            let (c, p) = chars[rng.gen_range(0..chars.len())];
            name.push_str(c);
            py.push_str(p);
        }
        (name, py)
    }

    /// A unique mobile for slot `k` (customers use their index, contacts a range above).
    fn mobile(&self, k: u64) -> String {
        let v = permute(k, self.mobile_domain, self.key ^ K_MOBILE);
        format!("{}{:08}", MOBILE_PREFIXES[(v / 100_000_000) as usize], v % 100_000_000)
    }

    fn tags(&self, org: bool, prefs: &Prefs, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
        let likes = |c: usize| prefs.cats.iter().any(|x| x.0 == c);
        let total = prefs.cats[prefs.cats.len() - 1].1;
        let takeaway_share = prefs
            .cats
            .iter()
            .enumerate()
            .find(|(_, x)| x.0 == CAT_TAKEAWAY)
            .map_or(0.0, |(k, x)| (x.1 - if k == 0 { 0.0 } else { prefs.cats[k - 1].1 }) / total);
        let mut tags = Vec::new();
        let mut maybe = |cond: bool, p: f64, tag: &'static str, rng: &mut ChaCha8Rng| {
            if rng.gen::<f64>() < p && cond {
                tags.push(tag);
            }
        };
        maybe(likes(0) || likes(CAT_TAKEAWAY), 0.5, "辣味爱好者", rng);
        maybe(likes(2) || likes(3), 0.5, "下午茶", rng);
        maybe(!org, 0.2, "家庭聚餐", rng);
        maybe(true, if org { 0.6 } else { 0.04 }, "商务宴请", rng);
        maybe(org, 0.7, "企业团餐", rng);
        maybe(prefs.promo > 0.4, 0.7, "会员日", rng);
        maybe(takeaway_share > 0.4, 1.0, "外卖常客", rng);
        maybe(true, 0.08, "新品尝鲜", rng);
        tags
    }

    fn contact(&self, i: u64, k: usize, domain: &str, rng: &mut ChaCha8Rng) -> Contact {
        let gender = if rng.gen::<bool>() { Gender::Male } else { Gender::Female };
        let (name, py) = self.person_name(gender, rng);
        let mobile = (rng.gen::<f64>() < 0.9).then(|| self.mobile(MAX_CUSTOMERS + 3 * i + k as u64));
        let email = (rng.gen::<f64>() < 0.8).then(|| format!("{py}@{domain}"));
        let mut interests = String::new();
        if rng.gen::<f64>() < 0.7 {
            let n = rng.gen_range(1..=3);
            let first = rng.gen_range(0..INTERESTS.len());
            for j in 0..n {
                if j > 0 {
                    interests.push(';');
                }
                interests.push_str(INTERESTS[(first + j * 5) % INTERESTS.len()]);
            }
        }
        let notes = if rng.gen::<f64>() < 0.5 { CONTACT_NOTES[rng.gen_range(0..CONTACT_NOTES.len())] } else { "" };
        Contact {
            contact_id: format!("{}-{}", customer_id(i), k + 1),
            customer_index: i,
            name,
            role: ROLES[rng.gen_range(0..ROLES.len())],
            mobile,
            email,
            interests,
            notes,
        }
    }

    fn interaction(
        &self,
        i: u64,
        t: NaiveDateTime,
        (sms_ok, email_ok, has_wechat): (bool, bool, bool),
        prefs: &Prefs,
        city_py: &str,
        rng: &mut ChaCha8Rng,
    ) -> Interaction {
        let mut kind = INTERACTION_KINDS[self.kinds.pick(rng)].0;
        if (kind == "sms_open" && !sms_ok) || (kind == "email_open" && !email_ok) {
            kind = "page_view";
        }
        let pick = |list: &[&'static str], rng: &mut ChaCha8Rng| list[rng.gen_range(0..list.len())];
        let page = |rng: &mut ChaCha8Rng| -> Cow<'static, str> {
            if rng.gen::<f64>() < 0.6 {
                let cat = prefs.cats[rng.gen_range(0..prefs.cats.len())].0;
                Cow::Borrowed(pick(CATEGORY_URLS[cat], rng))
            } else {
                match pick(GENERIC_URLS, rng) {
                    "/stores" => Cow::Owned(format!("/stores/{city_py}")),
                    u => Cow::Borrowed(u),
                }
            }
        };
        let app_or_web = |rng: &mut ChaCha8Rng| if rng.gen::<f64>() < 0.6 { "app" } else { "web" };
        let (channel, payload) = match kind {
            "page_view" => (app_or_web(rng), page(rng)),
            "click" => {
                let p = page(rng);
                (app_or_web(rng), Cow::Owned(format!("{p}#{}", pick(CLICK_TARGETS, rng))))
            }
            "sms_open" => ("sms", Cow::Borrowed(pick(SMS_CAMPAIGNS, rng))),
            "email_open" => ("email", Cow::Borrowed(pick(EMAIL_CAMPAIGNS, rng))),
            "reply" => (if has_wechat { "wechat" } else { "sms" }, Cow::Borrowed(pick(REPLIES, rng))),
            "call" => ("phone", Cow::Borrowed(pick(CALLS, rng))),
            "visit" => ("store", Cow::Borrowed(prefs.home_store)),
            _ => (if rng.gen::<bool>() { "store" } else { "wechat" }, Cow::Owned(format!("{} {}", pick(EVENTS, rng), prefs.home_store))),
        };
        Interaction { customer_index: i, kind, occurred_at: t, channel, payload }
    }
}

/// `n` demo account managers (email, display name), deterministic; emails at `example.com`.
pub fn default_account_managers(n: usize) -> Vec<AccountManager> {
    (0..n)
        .map(|k| {
            let (given, surname, gpy, spy) = ACCOUNT_MANAGERS[k % ACCOUNT_MANAGERS.len()];
            let round = k / ACCOUNT_MANAGERS.len();
            let suffix = if round == 0 { String::new() } else { (round + 1).to_string() };
            AccountManager { email: format!("{gpy}.{spy}{suffix}@example.com"), display_name: format!("{surname}{given}{suffix}") }
        })
        .collect()
}
