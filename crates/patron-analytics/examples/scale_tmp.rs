use patron_analytics::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Beta, Exp};
fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let lam = Gamma::new(0.8, 1.0 / 60.0).unwrap();
    let pd = Beta::new(1.0, 6.0).unwrap();
    let as_of = 20_000;
    let mut o = Orders::default();
    let t0 = std::time::Instant::now();
    for c in 0..n {
        let l: f64 = lam.sample(&mut rng);
        let p: f64 = pd.sample(&mut rng);
        let first = as_of - rng.gen_range(0..1000);
        let mut day = first as f64;
        let e = Exp::new(l).unwrap();
        loop {
            let k = rng.gen_range(1..3);
            for _ in 0..k {
                o.customer.push(c as u32); o.day.push(day as i32); o.amount_cents.push(rng.gen_range(500..20000));
                o.category.push(rng.gen_range(0..20)); o.full_price.push(rng.gen::<bool>());
            }
            day += e.sample(&mut rng) + 1.0;
            if day > (as_of + 200) as f64 || rng.gen::<f64>() < p { break; }
        }
    }
    // shuffle order rows partially: reverse to break sortedness
    o.customer.reverse(); o.day.reverse(); o.amount_cents.reverse(); o.category.reverse(); o.full_price.reverse();
    eprintln!("generated {} orders for {} customers in {:?}", o.len(), n, t0.elapsed());
    let t0 = std::time::Instant::now();
    let s = summarize(&o, n, as_of, &SummaryConfig::default()).unwrap();
    eprintln!("summaries {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    let rows = BtydRows::from_summaries(&s, TimeUnit::Days).unwrap();
    eprintln!("aggregate {:?} rows {}", t0.elapsed(), rows.len());
    let t0 = std::time::Instant::now();
    let f = bgnbd::fit(&rows, &FitOptions::default()).unwrap();
    eprintln!("bgnbd fit {:?} {:?}", t0.elapsed(), f);
    let t0 = std::time::Instant::now();
    let g = gamma_gamma::fit(&s.x, &s.m, &FitOptions::default()).unwrap();
    eprintln!("gg fit {:?} evals {}", t0.elapsed(), g.evaluations);
    let t0 = std::time::Instant::now();
    let r = rfm(&s, &RfmConfig::default()).unwrap();
    eprintln!("rfm {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    let l = loyalty(&s, &CustomerExtras::default(), &LoyaltyConfig::default()).unwrap();
    eprintln!("loyalty {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    let mut keys: Vec<u64> = (0..n).map(|c| (u64::from(s.x[c]) << 32) | u64::from(s.age[c])).collect();
    keys.sort_unstable(); keys.dedup();
    eprintln!("unique (x,T) {} in {:?}", keys.len(), t0.elapsed());
    let t0 = std::time::Instant::now();
    let mut acc = 0.0;
    for &k in &keys { acc += gamma_gamma::discounted_purchases_if_alive(&f.params, TimeUnit::Days, (k >> 32) as u32, (k & 0xffffffff) as f64, 12, 0.01); }
    eprintln!("clv factors (1 thread) {:?} {acc}", t0.elapsed());
    let _ = (r, l);
    let t0 = std::time::Instant::now();
    let out = analyze(&o, n, as_of, &CustomerExtras::default(), &AnalyticsConfig::default()).unwrap();
    eprintln!("full pipeline {:?}", t0.elapsed());
    eprintln!("{}", serde_json::to_string(&out.report).unwrap());
}
