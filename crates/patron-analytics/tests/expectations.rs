//! E[X(t) | x, t_x, T] checked against an independent computation: numerical integration over
//! the posterior of the dropout probability, which involves no hypergeometric function.
//!
//! For an alive customer with rate λ and dropout p, the expected purchases in the next t are
//! (1 − e^(−λpt))/p; integrating λ over its posterior Gamma(r+x, α+T) gives
//! (1 − (1 + p·t/(α+T))^−(r+x))/p, and p has the posterior Beta(a, b+x). So
//! E[X(t) | x, t_x, T] = P(alive) · ∫₀¹ (1 − (1 + p·u)^−(r+x))/p · Beta(p; a, b+x) dp,
//! u = t/(α+T). The integral is done by tanh-sinh quadrature, which copes with the Beta
//! density's endpoint singularities.

use patron_analytics::special::ln_beta;
use patron_analytics::BgNbdParams;

/// ln(1 + e^v) without overflow.
fn softplus(v: f64) -> f64 {
    if v > 0.0 {
        v + (-v).exp().ln_1p()
    } else {
        v.exp().ln_1p()
    }
}

/// ∫₀¹ g(p) Beta(p; a, bx) dp by tanh-sinh: p = 1/(1 + e^(−2v)), v = (π/2) sinh τ.
fn beta_expectation(a: f64, bx: f64, g: impl Fn(f64) -> f64) -> f64 {
    let h = 1.0 / 256.0;
    let lb = ln_beta(a, bx);
    let mut sum = 0.0;
    let mut k = -(8.0 / h) as i64;
    while (k as f64) * h <= 8.0 {
        let tau = k as f64 * h;
        let v = std::f64::consts::FRAC_PI_2 * tau.sinh();
        let ln_p = -softplus(-2.0 * v);
        let ln_q = -softplus(2.0 * v);
        // p^(a−1) (1−p)^(bx−1) · dp/dτ with dp/dτ = p(1−p) π cosh τ
        let w = (a * ln_p + bx * ln_q - lb).exp() * std::f64::consts::PI * tau.cosh();
        if w > 0.0 {
            sum += w * g(ln_p.exp());
        }
        k += 1;
    }
    sum * h
}

/// The integrand (1 − (1 + p·u)^−s)/p, with its limit s·u at p → 0.
fn if_alive_integrand(s: f64, u: f64) -> impl Fn(f64) -> f64 {
    move |p: f64| {
        if p * u < 1e-12 {
            s * u * (1.0 - 0.5 * (s + 1.0) * p * u)
        } else {
            -(-s * (p * u).ln_1p()).exp_m1() / p
        }
    }
}

#[test]
fn expected_purchases_equal_the_posterior_integral() {
    let mut worst: f64 = 0.0;
    let mut checked = 0;
    for &r in &[0.24, 2.5] {
        for &alpha in &[4.4, 60.0] {
            // a = 1 and a + b = 1 are the closed form's removable singularities
            for &a in &[0.3, 0.5, 0.79, 1.0, 1.0 + 3e-7, 2.5] {
                for &b in &[0.5, 0.7, 2.4] {
                    let params = BgNbdParams { r, alpha, a, b };
                    for &x in &[0u32, 1, 7, 60] {
                        for &age in &[0.0, 10.0, 300.0] {
                            for &t in &[0.5, 10.0, 52.0, 500.0, 5000.0] {
                                let s = r + f64::from(x);
                                let u = t / (alpha + age);
                                let want = beta_expectation(a, b + f64::from(x), if_alive_integrand(s, u));
                                let got = params.expected_purchases_if_alive(x, age, t);
                                let e = ((got - want) / want).abs();
                                assert!(e < 1e-9, "r={r} α={alpha} a={a} b={b} x={x} T={age} t={t}: closed form {got}, integral {want}");
                                worst = worst.max(e);
                                checked += 1;
                                // and the conditional one is P(alive) times it
                                let t_x = age * 0.5;
                                let x_eff = if age == 0.0 { 0 } else { x };
                                let t_x = if x_eff == 0 { 0.0 } else { t_x };
                                let cond = params.expected_purchases(x_eff, t_x, age, t);
                                let want_c = params.p_alive(x_eff, t_x, age) * params.expected_purchases_if_alive(x_eff, age, t);
                                assert!((cond - want_c).abs() <= 1e-15 * want_c.abs().max(1e-300));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} cases, worst relative difference {worst:e}");
}

#[test]
fn p_alive_equals_the_posterior_mass_of_alive() {
    // P(alive) = L(alive)/L(total); L(alive) ∝ B(a, b+x)/B(a,b) (α/(α+T))^r …, computed
    // here from the likelihood's two terms directly.
    let params = BgNbdParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
    for &(x, tx, t) in &[(1u32, 2.0, 30.0), (4, 20.0, 38.0), (12, 35.0, 38.0)] {
        let xf = f64::from(x);
        let alive = ln_beta(params.a, params.b + xf) - (params.r + xf) * (params.alpha + t).ln();
        let dead = ln_beta(params.a + 1.0, params.b + xf - 1.0) - (params.r + xf) * (params.alpha + tx).ln();
        let want = 1.0 / (1.0 + (dead - alive).exp());
        assert!((params.p_alive(x, tx, t) - want).abs() < 1e-13);
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// The same comparison over random parameters, data and horizons.
        #[test]
        fn closed_form_matches_integral(
            r in 0.01f64..20.0, alpha in 0.01f64..500.0, a in 0.05f64..10.0, b in 0.05f64..10.0,
            x in 0u32..200, age in 0.0f64..2000.0, t in 0.01f64..3000.0,
        ) {
            let params = BgNbdParams { r, alpha, a, b };
            let s = r + f64::from(x);
            let want = beta_expectation(a, b + f64::from(x), if_alive_integrand(s, t / (alpha + age)));
            let got = params.expected_purchases_if_alive(x, age, t);
            prop_assert!(((got - want) / want).abs() < 1e-8, "closed form {got}, integral {want}");
        }
    }
}
