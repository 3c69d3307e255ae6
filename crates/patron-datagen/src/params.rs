//! The true parameters of the purchase process (BG/NBD + Gamma-Gamma), in days and yuan.

/// Parameters of one segment's BG/NBD purchase process and Gamma-Gamma spend model.
///
/// Time unit: days. Money unit: yuan (major units).
/// - purchase rate while active `λ ~ Gamma(shape r, rate alpha)`;
/// - dropout probability after each *repeat* purchase `p ~ Beta(a, b)` (as in Fader, Hardie & Lee
///   2005: a customer is alive until their first repeat purchase);
/// - spend: `ν ~ Gamma(shape q, rate gamma)`, each order's amount `z ~ Gamma(shape p, rate ν)`
///   (Fader & Hardie 2013), so `E[z] = p·gamma / (q − 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl ModelParams {
    /// Mean purchase rate of an active customer, purchases per day (`r / alpha`).
    pub fn mean_rate(&self) -> f64 {
        self.r / self.alpha
    }

    /// Mean dropout probability after a repeat purchase (`a / (a + b)`).
    pub fn mean_dropout(&self) -> f64 {
        self.a / (self.a + self.b)
    }

    /// Population mean of one order's amount in yuan (`p·gamma / (q − 1)`, needs `q > 1`).
    pub fn mean_spend(&self) -> f64 {
        self.p * self.gamma / (self.q - 1.0)
    }

    /// BG/NBD `E[X(t)]`: expected number of repeat purchases in `t` days after the first purchase
    /// for a randomly chosen customer (FHL 2005 eq. 9). With seasonality, pass the customer's
    /// *effective* age (see [`crate::Generator::effective_days`]).
    pub fn expected_repeat_purchases(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        // The closed form is singular at a = 1; nudge it (the function is continuous in a).
        let a = if (self.a - 1.0).abs() < 1e-7 { 1.0 + 1e-7 } else { self.a };
        let (r, alpha, b) = (self.r, self.alpha, self.b);
        let z = t / (alpha + t);
        (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * hyp2f1(r, b, a + b - 1.0, z))
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        let all = [self.r, self.alpha, self.a, self.b, self.p, self.q, self.gamma];
        if all.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(format!("{what}: all parameters must be finite and > 0"));
        }
        if self.q <= 1.0 {
            return Err(format!("{what}: q must be > 1 so that the mean spend exists"));
        }
        Ok(())
    }
}

/// Gauss hypergeometric function 2F1(a, b; c; z) for 0 ≤ z < 1 by its power series.
fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 0..10_000_000u32 {
        let n = f64::from(n);
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

/// The true parameters used by the generator: one set for people, one for organisations.
///
/// Defaults ([`TrueParams::DEFAULT`]):
///
/// | segment | r | α | a | b | p | q | γ | mean days between purchases (r/α)⁻¹ | mean dropout a/(a+b) | mean order (¥) pγ/(q−1) |
/// |---|---|---|---|---|---|---|---|---|---|---|
/// | person | 1.0 | 30 | 0.7 | 5.5 | 6 | 4 | 55 | 30 | 0.113 | 110 |
/// | organisation | 1.2 | 45 | 0.5 | 5.0 | 4 | 5 | 800 | 37.5 | 0.091 | 800 |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueParams {
    pub person: ModelParams,
    pub organisation: ModelParams,
}

impl TrueParams {
    pub const DEFAULT: TrueParams = TrueParams {
        person: ModelParams { r: 1.0, alpha: 30.0, a: 0.7, b: 5.5, p: 6.0, q: 4.0, gamma: 55.0 },
        organisation: ModelParams { r: 1.2, alpha: 45.0, a: 0.5, b: 5.0, p: 4.0, q: 5.0, gamma: 800.0 },
    };

    pub(crate) fn validate(&self) -> Result<(), String> {
        self.person.validate("person parameters")?;
        self.organisation.validate("organisation parameters")
    }
}

impl Default for TrueParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_repeat_purchases_matches_monte_carlo() {
        use rand::SeedableRng;
        use rand_distr::{Beta, Distribution, Gamma};
        // E[X(t)] = E over (λ, p) of (1 − e^{−λpt}) / p (FHL 2005 eq. 7).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for m in [
            ModelParams { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426, p: 1.0, q: 2.0, gamma: 1.0 }, // CDNOW, weeks
            TrueParams::DEFAULT.person,
            TrueParams::DEFAULT.organisation,
        ] {
            let (gl, bp) = (Gamma::new(m.r, 1.0 / m.alpha).unwrap(), Beta::new(m.a, m.b).unwrap());
            let n = 100_000;
            for t in [39.0, 400.0, 1200.0] {
                let mc = (0..n)
                    .map(|_| {
                        let (l, p): (f64, f64) = (gl.sample(&mut rng), bp.sample(&mut rng));
                        (1.0 - (-l * p * t).exp()) / p
                    })
                    .sum::<f64>()
                    / n as f64;
                let exact = m.expected_repeat_purchases(t);
                assert!((exact - mc).abs() < 0.03 * exact.max(1.0), "t={t} exact={exact} mc={mc}");
            }
        }
        // Small t: E[X(t)] ≈ (r/α)·t.
        let m = TrueParams::DEFAULT.person;
        assert!((m.expected_repeat_purchases(1e-4) / 1e-4 - m.mean_rate()).abs() < 1e-3 * m.mean_rate());
    }
}
