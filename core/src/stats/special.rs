//! Special functions the tests need: the normal distribution and the
//! chi-squared survival function.
//!
//! `erf`, `erfc` and `lgamma` come from the `libm` crate (a port of the
//! FreeBSD/musl libm, accurate to about one ulp). SciPy evaluates the same
//! functions with Cephes; the two agree to a few ulp, which is why the
//! reference tests compare p-values with a relative tolerance of 1e-12
//! rather than bit for bit.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Standard normal cumulative distribution function, `Phi(a)`.
///
/// Follows Cephes `ndtr`: `0.5 + 0.5 erf(a / sqrt 2)` near the centre, and
/// `0.5 erfc(|a| / sqrt 2)` (reflected for positive `a`) in the tails, so
/// that small tail probabilities keep their relative accuracy.
pub fn ndtr(a: f64) -> f64 {
    let x = a * FRAC_1_SQRT_2;
    let z = x.abs();
    if z < FRAC_1_SQRT_2 {
        return 0.5 + 0.5 * libm::erf(x);
    }

    let y = 0.5 * libm::erfc(z);
    if x > 0.0 {
        1.0 - y
    } else {
        y
    }
}

/// Standard normal survival function, `1 - Phi(a)`, as SciPy's
/// `_SimpleNormal.sf` evaluates it: `ndtr(-a)`.
pub fn normal_sf(a: f64) -> f64 {
    ndtr(-a)
}

/// Inverse of the standard normal distribution function, `Phi^-1(p)`.
///
/// Starts from Acklam's rational approximation (relative error 1.15e-9)
/// and polishes it with two Halley steps on `erfc`, computed on the tail
/// that holds `p` (`q = 1 - p` is exact for `p >= 0.5`), which brings it to
/// full double precision. `p = 0` gives minus infinity, `p = 1` infinity,
/// and anything outside `[0, 1]` (or NaN) gives NaN.
pub fn ndtri(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }

    // Work on the lower tail and mirror: Phi^-1(p) = -Phi^-1(1 - p).
    let (tail, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    let mut x = -acklam_lower(tail);

    // Halley on f(x) = Q(x) - tail with Q the upper tail, x >= 0.
    for _ in 0..2 {
        let e = 0.5 * libm::erfc(x * FRAC_1_SQRT_2) - tail;
        let u = -e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
        x -= u / (1.0 + 0.5 * x * u);
    }
    sign * x
}

/// Acklam's approximation of `Phi^-1(p)` for `0 < p <= 0.5`.
fn acklam_lower(p: f64) -> f64 {
    // Coefficients published by P. J. Acklam (2003), "An algorithm for
    // computing the inverse normal cumulative distribution function".
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];

    if p < 0.02425 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Survival function of the chi-squared distribution with `df` degrees of
/// freedom: `P(X >= x) = Q(df / 2, x / 2)`, with `Q` the regularised upper
/// incomplete gamma function (SciPy's `chdtrc`).
///
/// `x <= 0` gives 1; NaN in gives NaN out.
pub fn chi2_sf(df: f64, x: f64) -> f64 {
    if x.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(0.5 * df, 0.5 * x)
}

/// Regularised upper incomplete gamma function `Q(a, x)`, `a > 0`, `x > 0`.
///
/// Closed forms for `a = 1/2` (`erfc(sqrt x)`) and `a = 1` (`exp(-x)`), the
/// one- and two-degree-of-freedom cases of the tests. Otherwise the power
/// series of `P` below `x = a + 1` and the Legendre continued fraction of
/// `Q` above it, evaluated with the modified Lentz method (Numerical
/// Recipes, 3rd ed., section 6.2); both converge to a relative 1e-16.
fn gamma_q(a: f64, x: f64) -> f64 {
    if a == 0.5 {
        return libm::erfc(x.sqrt());
    }
    if a == 1.0 {
        return (-x).exp();
    }

    let log_prefactor = a * x.ln() - x - libm::lgamma(a);
    if x < a + 1.0 {
        // P(a, x) = x^a e^-x / Gamma(a + 1) * sum_k x^k / ((a+1)...(a+k)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        return 1.0 - sum * log_prefactor.exp();
    }

    // Q(a, x) = x^a e^-x / Gamma(a) * 1 / (x + 1 - a - 1(1-a)/(x + 3 - a - ...)).
    let tiny = f64::MIN_POSITIVE / f64::EPSILON;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-17 {
            break;
        }
    }
    log_prefactor.exp() * h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn ndtr_matches_known_values() {
        // Values from the defining integral (Abramowitz and Stegun, table 26.1).
        assert_eq!(ndtr(0.0), 0.5);
        assert!(close(ndtr(1.96), 0.975_002_104_851_780_1, 1e-14));
        assert!(close(ndtr(-5.0), 2.866_515_718_791_939e-7, 1e-13));
        assert!(close(normal_sf(8.0), 6.220_960_574_271_785e-16, 1e-12));
    }

    #[test]
    fn ndtri_inverts_ndtr_across_the_range() {
        for &p in &[
            1e-300, 1e-20, 1e-5, 0.02, 0.3, 0.5, 0.51, 0.7, 0.975, 0.999_999,
        ] {
            let x = ndtri(p);
            let back = if p > 0.5 { 1.0 - normal_sf(x) } else { ndtr(x) };
            // Deep in the tail the round-off of x itself is amplified by
            // |x| in Phi(x): 1e-12 allows for that at x = -37.
            assert!(close(back, p, 1e-12), "p {p:e}: x {x}, Phi(x) {back:e}");
        }
        assert!(close(ndtri(0.975), 1.959_963_984_540_054, 1e-15));
        assert_eq!(ndtri(0.5), 0.0);
        assert!(ndtri(1.5).is_nan());
    }

    #[test]
    fn chi2_sf_matches_closed_forms() {
        // df = 4 has Q(2, y) = e^-y (1 + y): checks the series and the fraction.
        for &x in &[0.5, 2.0, 5.9, 6.1, 30.0] {
            let y: f64 = x / 2.0;
            let want = (-y).exp() * (1.0 + y);
            assert!(close(chi2_sf(4.0, x), want, 1e-14), "x {x}");
        }
        assert!(close(
            chi2_sf(2.0, 10.803_687_663_522_238),
            0.004_508_260_800_047_75,
            1e-13
        ));
        assert_eq!(chi2_sf(3.0, 0.0), 1.0);
    }
}
