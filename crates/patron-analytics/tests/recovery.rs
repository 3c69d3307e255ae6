//! Parameter recovery: data simulated from known BG/NBD and Gamma-Gamma processes (100,000
//! customers, fixed seed) are fitted, and every estimate must lie within 4 asymptotic
//! standard errors of the true value.
//!
//! Why 4 SE: the MLE is asymptotically normal with the covariance given by the inverse
//! observed information, which the fit reports; at 100,000 customers that approximation is
//! good, and |Z| > 4 has probability 6e-5 per parameter, so a correct estimator passes for
//! practically every seed, while a biased likelihood or gradient (which shifts estimates by
//! many SE at this sample size) fails. The SEs themselves are also required to be small
//! (relative SE below 10%), so the test cannot pass through uninformative data.

use patron_analytics::{bgnbd, gamma_gamma, BgNbdParams, BtydRows, FitOptions, GammaGammaParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};

struct Simulated {
    x: Vec<u32>,
    t_x: Vec<f64>,
    age: Vec<f64>,
    m: Vec<f64>,
}

/// BG/NBD customers observed for T ~ U(1, 730) days since their first purchase; for repeat
/// customers the mean of their x purchase values from Gamma-Gamma.
fn simulate(n: usize, bg: BgNbdParams, gg: GammaGammaParams, seed: u64) -> Simulated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let lambda_dist = Gamma::new(bg.r, 1.0 / bg.alpha).unwrap();
    let p_dist = Beta::new(bg.a, bg.b).unwrap();
    let nu_dist = Gamma::new(gg.q, 1.0 / gg.gamma).unwrap();
    let mut sim = Simulated { x: Vec::with_capacity(n), t_x: Vec::with_capacity(n), age: Vec::with_capacity(n), m: Vec::with_capacity(n) };
    for _ in 0..n {
        let lambda: f64 = lambda_dist.sample(&mut rng);
        let p: f64 = p_dist.sample(&mut rng);
        let age = rng.gen_range(1.0..730.0);
        let gap = Exp::new(lambda).unwrap();
        let (mut t, mut x, mut t_x) = (0.0, 0u32, 0.0);
        loop {
            t += gap.sample(&mut rng);
            if t > age {
                break;
            }
            x += 1;
            t_x = t;
            // after each repeat purchase the customer drops out with probability p
            if rng.gen::<f64>() < p {
                break;
            }
        }
        let m = if x > 0 {
            let nu: f64 = nu_dist.sample(&mut rng);
            // the sum of x independent Gamma(p, rate ν) values is Gamma(x·p, rate ν)
            let total = Gamma::new(gg.p * f64::from(x), 1.0 / nu).unwrap();
            total.sample(&mut rng) / f64::from(x)
        } else {
            0.0
        };
        sim.x.push(x);
        sim.t_x.push(t_x);
        sim.age.push(age);
        sim.m.push(m);
    }
    sim
}

fn within(name: &str, est: f64, se: f64, truth: f64) {
    let z = (est - truth) / se;
    eprintln!("{name}: true {truth}, estimate {est:.5}, SE {se:.5}, z = {z:+.2}");
    assert!(se / truth < 0.10, "{name}: SE {se} too large to test anything");
    assert!(z.abs() < 4.0, "{name}: estimate {est} is {z:.2} SE from the true {truth}");
}

#[test]
fn bgnbd_and_gamma_gamma_recover_known_parameters() {
    let bg_true = BgNbdParams { r: 0.5, alpha: 20.0, a: 0.8, b: 2.5 };
    let gg_true = GammaGammaParams { p: 6.0, q: 4.0, gamma: 15.0 };
    let started = std::time::Instant::now();
    let sim = simulate(100_000, bg_true, gg_true, 20_050_301);
    eprintln!("simulated in {:?}", started.elapsed());
    let rows = BtydRows::aggregate(&sim.x, &sim.t_x, &sim.age).unwrap();
    let fit = bgnbd::fit(&rows, &FitOptions::default()).unwrap();
    assert!(fit.converged, "{fit:?}");
    let se = fit.std_errors.unwrap();
    within("r", fit.params.r, se.r, bg_true.r);
    within("alpha", fit.params.alpha, se.alpha, bg_true.alpha);
    within("a", fit.params.a, se.a, bg_true.a);
    within("b", fit.params.b, se.b, bg_true.b);

    eprintln!("BG/NBD fitted after {:?}: {fit:?}", started.elapsed());
    let gg = gamma_gamma::fit(&sim.x, &sim.m, &FitOptions::default()).unwrap();
    assert!(gg.converged, "{gg:?}");
    eprintln!("Gamma-Gamma fitted after {:?}: {gg:?}", started.elapsed());
    let se = gg.std_errors.unwrap();
    within("p", gg.params.p, se.p, gg_true.p);
    within("q", gg.params.q, se.q, gg_true.q);
    within("gamma", gg.params.gamma, se.gamma, gg_true.gamma);
}
