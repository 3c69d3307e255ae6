//! Thin wrapper around argmin's L-BFGS (More-Thuente line search) for the likelihood fits.
//!
//! The objectives compute value and gradient in one pass over the data, so the last
//! evaluation is cached: the line search asks for the cost and then the gradient at the same
//! point, which would otherwise cost two passes.

use std::cell::RefCell;

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};

/// Optimiser settings of the maximum-likelihood fits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Maximum number of L-BFGS iterations (default 1000).
    pub max_iterations: u64,
    /// Stop when the gradient norm of the mean negative log-likelihood (per customer, in
    /// log-parameters) is below this (default 1e-9; rounding noise in the sums over customers
    /// sits around 1e-9, below which line searches only churn).
    pub gradient_tolerance: f64,
    /// Stop when an iteration lowers the mean negative log-likelihood by less than this
    /// (default 1e-14, about 1e-15 relative: nothing left to gain in double precision).
    pub cost_tolerance: f64,
    /// A fit counts as converged when the final gradient norm is below this (default 1e-6).
    pub converged_gradient: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { max_iterations: 1000, gradient_tolerance: 1e-9, cost_tolerance: 1e-14, converged_gradient: 1e-6 }
    }
}

/// Outcome of a minimisation.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    /// Best point found.
    pub x: Vec<f64>,
    /// Objective there.
    pub cost: f64,
    /// Euclidean norm of the gradient there.
    pub gradient_norm: f64,
    /// L-BFGS iterations.
    pub iterations: u64,
    /// Why it stopped (argmin's wording).
    pub termination: String,
    /// Objective evaluations (value and gradient together).
    pub evaluations: u64,
}

type Eval = (Vec<f64>, f64, Vec<f64>);

/// An objective: value and gradient at a point.
pub(crate) type Objective<'a> = &'a (dyn Fn(&[f64]) -> (f64, Vec<f64>) + Sync);

struct Problem<'a> {
    f: Objective<'a>,
    cache: RefCell<Option<Eval>>,
    // Outside the problem: argmin does not hand the problem back when a line search fails.
    evaluations: &'a std::cell::Cell<u64>,
}

impl Problem<'_> {
    fn eval(&self, x: &[f64]) -> Result<(f64, Vec<f64>), ArgminError> {
        if let Some((cx, v, g)) = self.cache.borrow().as_ref() {
            if cx.as_slice() == x {
                return Ok((*v, g.clone()));
            }
        }
        let (v, g) = (self.f)(x);
        self.evaluations.set(self.evaluations.get() + 1);
        if !v.is_finite() || g.iter().any(|d| !d.is_finite()) {
            // An error makes the line search back off; L-BFGS then stops at its last good point.
            return Err(ArgminError::msg("objective not finite at trial point"));
        }
        *self.cache.borrow_mut() = Some((x.to_vec(), v, g.clone()));
        Ok((v, g))
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.eval(p)?.0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        Ok(self.eval(p)?.1)
    }
}

/// Minimises `f` (returning value and gradient) from `x0` with L-BFGS.
pub(crate) fn minimize(f: Objective<'_>, x0: Vec<f64>, opts: &FitOptions) -> Result<Minimum, String> {
    let (v0, g0) = f(&x0);
    if !v0.is_finite() || g0.iter().any(|d| !d.is_finite()) {
        return Err("objective is not finite at the start values".into());
    }
    // The start point's evaluation is the first one the solver asks for.
    let evaluations = std::cell::Cell::new(1);
    let problem = Problem { f, cache: RefCell::new(Some((x0.clone(), v0, g0))), evaluations: &evaluations };
    let linesearch = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(linesearch, 10)
        .with_tolerance_grad(opts.gradient_tolerance)
        .and_then(|s| s.with_tolerance_cost(opts.cost_tolerance))
        .map_err(|e| e.to_string())?;
    let res = Executor::new(problem, solver)
        .configure(|state| state.param(x0.clone()).max_iters(opts.max_iterations))
        .run()
        .map_err(|e| e.to_string())?;
    let state = res.state();
    let iterations = state.get_iter();
    let termination = match state.get_termination_reason() {
        Some(TerminationReason::SolverExit(msg)) => msg.clone(),
        Some(r) => r.text().to_string(),
        None => "not terminated".to_string(),
    };
    let x = state.get_best_param().cloned().unwrap_or(x0);
    // Re-evaluate at the returned point: argmin's best cost and gradient may belong to
    // different iterates.
    let (cost, grad) = f(&x);
    let gradient_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    Ok(Minimum { x, cost, gradient_norm, iterations, termination, evaluations: evaluations.get() })
}

/// Minimises `f` (value, gradient and Hessian at a point) by Newton steps from `x0`, a point
/// near the optimum: each step is one evaluation. With the exact Hessian the error squares each
/// step; with a fixed curvature matrix (see [`newton_polish`]) it shrinks by about the relative
/// difference to the true Hessian. Stops as [`minimize`] does (gradient norm below
/// `gradient_tolerance`, or a step gaining less than `cost_tolerance` once the gradient is below
/// `converged_gradient`) and returns the minimum with the Hessian there; `Err` with the best
/// point so far when a step is not downhill or the steps stop shrinking the gradient (the
/// caller goes on with L-BFGS from there).
pub(crate) fn newton<const N: usize>(
    f: impl Fn(&[f64]) -> (f64, [f64; N], [[f64; N]; N]),
    x0: Vec<f64>,
    opts: &FitOptions,
    converged: &str,
) -> Result<(Minimum, [[f64; N]; N]), Vec<f64>> {
    const MAX_STEPS: u64 = 30;
    if x0.len() != N {
        return Err(x0);
    }
    let mut x = x0;
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut prev_cost = f64::INFINITY;
    for step in 0..MAX_STEPS {
        let (cost, grad, hess) = f(&x);
        if !cost.is_finite() || grad.iter().chain(hess.iter().flatten()).any(|g| !g.is_finite()) {
            break;
        }
        let gradient_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let done = gradient_norm < opts.gradient_tolerance
            || (gradient_norm < opts.converged_gradient && (prev_cost - cost).abs() < opts.cost_tolerance);
        if done {
            let m = Minimum { x, cost, gradient_norm, iterations: step, termination: converged.into(), evaluations: step + 1 };
            return Ok((m, hess));
        }
        match &best {
            // Not contracting: the curvature does not fit this objective well enough.
            Some((b, _)) if gradient_norm > 0.5 * b => break,
            _ => best = Some((gradient_norm, x.clone())),
        }
        prev_cost = cost;
        let Some(inv) = crate::bgnbd::invert(hess) else { break };
        let delta: [f64; N] = std::array::from_fn(|i| -(0..N).map(|j| inv[i][j] * grad[j]).sum::<f64>());
        // Not downhill: the curvature is not positive definite here (far from the optimum).
        if delta.iter().zip(&grad).map(|(d, g)| d * g).sum::<f64>() >= 0.0 {
            break;
        }
        for (xi, d) in x.iter_mut().zip(delta) {
            *xi += d;
        }
    }
    Err(best.map_or(x, |(_, b)| b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_with_the_exact_hessian_converges_in_a_few_steps() {
        // A smooth convex objective with its exact Hessian, from near the optimum.
        let f = |x: &[f64]| {
            let (a, b) = (x[0] - 1.0, x[1] + 2.0);
            let v = a * a + 0.5 * b * b + 0.1 * a.powi(4) + 0.3 * a * b;
            let g = [2.0 * a + 0.4 * a.powi(3) + 0.3 * b, b + 0.3 * a];
            (v, g, [[2.0 + 1.2 * a * a, 0.3], [0.3, 1.0]])
        };
        let (m, hess) = newton(f, vec![1.5, -1.5], &FitOptions::default(), "converged").unwrap();
        assert!((m.x[0] - 1.0).abs() < 1e-9 && (m.x[1] + 2.0).abs() < 1e-9, "{m:?}");
        assert!(m.evaluations <= 6, "{m:?}");
        assert_eq!((hess, m.termination.as_str()), ([[2.0 + 1.2 * (m.x[0] - 1.0).powi(2), 0.3], [0.3, 1.0]], "converged"));
        // A curvature that is not positive definite gives no downhill step: refused with the
        // best point so far (the caller goes on with L-BFGS).
        let concave = |x: &[f64]| {
            let (v, g, _) = f(x);
            (v, g, [[-2.0, 0.0], [0.0, -1.0]])
        };
        assert_eq!(newton(concave, vec![1.5, -1.5], &FitOptions::default(), "converged").unwrap_err(), vec![1.5, -1.5]);
    }

    #[test]
    fn minimizes_a_rosenbrock() {
        let f = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            let v = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            (v, g)
        };
        let m = minimize(&f, vec![-1.2, 1.0], &FitOptions::default()).unwrap();
        assert!((m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6, "{m:?}");
        assert!(m.gradient_norm < 1e-6);
    }
}
