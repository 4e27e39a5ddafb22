"""numba float64 scalar kernels of the incomplete gamma and beta functions, and the digamma they
need. They live under lax because the eager impls of igamma_grad_a and random_gamma_grad run
them (SciPy has no such functions); lax/special.py imports this module lazily, so numba loads
only when one is called. backends/vmath.py re-exports them for the CPU jit's generated kernels.
Every public kernel takes any float, computes in float64 and gives scipy.special's value at the
edges (nan for a negative parameter or an x outside the domain, the limits at 0 and inf).

Methods: P(a, x) by its power series for x < a + 1, Q(a, x) by Legendre's continued fraction
otherwise (forward recurrence of the convergents, carrying d/da alongside), the weight
x^a e^-x / Gamma(a) in a form free of cancellation for large a; I_x(a, b) by the continued
fraction of DLMF 8.17.22 (modified Lentz) on the side of (a + 1) / (a + b + 2) where it
converges fast, by symmetry on the other."""
import math

import numba
import numpy as np
import scipy.special

_SJ = dict(cache=True, error_model="numpy")
_EPS = 2.220446049250313e-16
_MAX_TERMS = 20000          # enough for a up to about 1e7 (the series need O(sqrt(a)) terms)
_TINY = 1e-300              # Lentz's guard against a zero denominator
_RESCALE = 1e100            # convergents above this are scaled down (ratios are unchanged)
_LOG_2PI = math.log(2 * math.pi)

# B_2j / (2j) (digamma's asymptotic series), j = 1..8
_PSI_C = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12, -3617 / 8160)
# B_2j / (2j (2j - 1)) (Stirling's series of log Gamma), j = 1..7
_STIRLING_C = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
# (-1)^k zeta(k) / k, k = 2..25 (the Taylor series of log Gamma(1 + a) at 0)
_LGAMMA1P_C = tuple(float((-1) ** k * scipy.special.zeta(k) / k) for k in range(2, 26))
_EULER_GAMMA = 0.5772156649015329


@numba.njit(**_SJ)
def digamma_f64(x):
    """psi(x) = d/dx log Gamma(x): -inf at +0, +inf at -0, nan at negative integers and -inf."""
    if x != x or x == -math.inf:
        return math.nan
    if x == math.inf:
        return x
    if x == 0.0:
        return -math.inf if math.copysign(1.0, x) > 0 else math.inf
    acc = 0.0
    if x < 0.0:
        if np.floor(x) == x:            # np.floor stays a float (math.floor is an int here)
            return math.nan
        acc = -math.pi / math.tan(math.pi * x)      # psi(x) = psi(1 - x) - pi / tan(pi x)
        x = 1.0 - x
    while x < 10.0:                                 # psi(x) = psi(x + 1) - 1 / x
        acc -= 1.0 / x
        x += 1.0
    z = 1.0 / (x * x)
    tail = 0.0
    for j in range(7, -1, -1):                      # sum_j B_2j / (2j x^2j), Horner in z
        tail = (tail + _PSI_C[j]) * z
    return acc + math.log(x) - 0.5 / x - tail


# ---------------------------------------------------------------------------------------------
# Incomplete gamma

@numba.njit(**_SJ)
def _log1pmx(d):
    """log(1 + d) - d, without cancellation for small |d|: with z = d / (2 + d),
    log(1 + d) = 2 atanh(z), so log(1 + d) - d = -d^2 / (2 + d) + 2 sum_k>=1 z^(2k+1) / (2k+1)."""
    if abs(d) > 0.5:
        return math.log1p(d) - d
    z = d / (2.0 + d)
    z2 = z * z
    power, acc, k = z * z2, 0.0, 3.0
    for _ in range(_MAX_TERMS):
        t = power / k
        acc += t
        if abs(t) <= _EPS * abs(acc):
            break
        power *= z2
        k += 2.0
    return 2.0 * acc - d * d / (2.0 + d)


@numba.njit(**_SJ)
def _stirling_tail(a):
    """log Gamma(a) - ((a - 1/2) log a - a + log(2 pi) / 2), for a >= 10."""
    r = 1.0 / a
    tail = 0.0
    for j in range(6, -1, -1):                      # Horner in 1 / a^2
        tail = tail * r * r + _STIRLING_C[j]
    return tail * r


@numba.njit(**_SJ)
def _log_gamma_weight(a, x):
    """log(x^a e^-x / Gamma(a)) for finite a, x > 0. For a >= 10 it is written
    0.5 log(a / 2 pi) + a (log(x / a) - (x - a) / a) - stirling(a), which has none of the
    cancellation between a log x, x and log Gamma(a) (each large when a is); log1pmx near
    x = a, where the bracket itself cancels."""
    if a < 10.0:
        return a * math.log(x) - x - math.lgamma(a)
    d = (x - a) / a
    bracket = a * _log1pmx(d) if abs(d) <= 0.5 else a * math.log(x / a) - (x - a)
    return 0.5 * (math.log(a) - _LOG_2PI) + bracket - _stirling_tail(a)


@numba.njit(**_SJ)
def _lower_series(a, x):
    """(S, dS/da) for S = sum_n>=0 x^n / ((a+1)...(a+n)): P(a, x) = x^a e^-x / Gamma(a+1) S.
    Every term is positive and every term's a-derivative negative: no cancellation."""
    term, s, dterm, ds = 1.0, 1.0, 0.0, 0.0
    for n in range(1, _MAX_TERMS):
        ap = a + n
        term *= x / ap
        dterm = (dterm * x - term) / ap
        s += term
        ds += dterm
        if term <= _EPS * s and abs(dterm) <= _EPS * abs(ds):
            break
    return s, ds


@numba.njit(**_SJ)
def _lgamma1p(a):
    """log Gamma(1 + a), accurate for small |a| too (where 1 + a would round)."""
    if abs(a) >= 0.2:
        return math.lgamma(1.0 + a)
    poly = 0.0
    for j in range(len(_LGAMMA1P_C) - 1, -1, -1):
        poly = poly * a + _LGAMMA1P_C[j]
    return a * (-_EULER_GAMMA + a * poly)


@numba.njit(**_SJ)
def _upper_series(a, x):
    """Q(a, x) for small a and x < a + 1, where 1 - P would cancel:
    Q = 1 - x^a / Gamma(a+1) - x^a / Gamma(a) sum_n>=1 (-x)^n / (n! (a+n))."""
    u = a * math.log(x) - _lgamma1p(a)
    term, acc = 1.0, 0.0
    for n in range(1, _MAX_TERMS):
        term *= -x / n
        t = term / (a + n)
        acc += t
        if abs(t) <= _EPS * abs(acc):
            break
    return -math.expm1(u) - a * math.exp(u) * acc


@numba.njit(**_SJ)
def _upper_fraction(a, x):
    """(f, df/da) for Legendre's continued fraction f = 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/...)),
    Q(a, x) = x^a e^-x / Gamma(a) f, from the recurrence of its convergents A_k / B_k (k-th
    partial numerator n_k = -(k-1)(k-1-a), n_1 = 1, denominator x + 2k - 1 - a), which is
    differentiated in a term by term."""
    a2, b2, da2, db2 = 1.0, 0.0, 0.0, 0.0           # A_{k-2}, B_{k-2} and their a-derivatives
    a1, b1, da1, db1 = 0.0, 1.0, 0.0, 0.0           # A_{k-1}, B_{k-1}
    f, df = 0.0, 0.0
    for k in range(1, _MAX_TERMS):
        num, dnum = (1.0, 0.0) if k == 1 else (-(k - 1.0) * (k - 1.0 - a), k - 1.0)
        den = x + 2.0 * k - 1.0 - a                 # d den / da = -1
        ak = den * a1 + num * a2
        bk = den * b1 + num * b2
        dak = den * da1 - a1 + num * da2 + dnum * a2
        dbk = den * db1 - b1 + num * db2 + dnum * b2
        a2, b2, da2, db2 = a1, b1, da1, db1
        a1, b1, da1, db1 = ak, bk, dak, dbk
        if bk != 0.0:
            f_new = ak / bk
            df_new = (dak - f_new * dbk) / bk
            done = (abs(f_new - f) <= _EPS * abs(f_new)
                    and abs(df_new - df) <= _EPS * (abs(df_new) + abs(f_new)))
            f, df = f_new, df_new
            if done:
                break
        if abs(bk) > _RESCALE:
            s = 1.0 / _RESCALE
            a2, b2, da2, db2 = a2 * s, b2 * s, da2 * s, db2 * s
            a1, b1, da1, db1 = a1 * s, b1 * s, da1 * s, db1 * s
    return f, df


@numba.njit(**_SJ)
def _gamma_edge(a, x, upper):
    """P(a, x) (Q if upper) where scipy defines it without the series or the fraction (a or x
    zero, infinite or invalid); -1.0 elsewhere."""
    if not (a >= 0.0 and x >= 0.0) or (a == 0.0 and x == 0.0) or (a == math.inf
                                                                    and x == math.inf):
        return math.nan
    if a == 0.0 or x == math.inf:
        return 0.0 if upper else 1.0
    if x == 0.0 or a == math.inf:
        return 1.0 if upper else 0.0
    return -1.0


@numba.njit(**_SJ)
def _igamma(a, x, upper):
    edge = _gamma_edge(a, x, upper)
    if edge != -1.0:
        return edge
    w = _log_gamma_weight(a, x)
    if x < a + 1.0:
        if upper and a < 0.5:
            return _upper_series(a, x)
        s, _ = _lower_series(a, x)
        p = math.exp(w - math.log(a)) * s
        return 1.0 - p if upper else p
    f, _ = _upper_fraction(a, x)
    q = math.exp(w) * f
    return q if upper else 1.0 - q


@numba.njit(**_SJ)
def igamma_f64(a, x):
    """The regularized lower incomplete gamma function P(a, x)."""
    return _igamma(np.float64(a), np.float64(x), False)


@numba.njit(**_SJ)
def igammac_f64(a, x):
    """The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x)."""
    return _igamma(np.float64(a), np.float64(x), True)


@numba.njit(**_SJ)
def _igamma_da(a, x, sample):
    """dP(a, x)/da; with sample, the derivative of a Gamma(a, 1) sample x in a at fixed P,
    -(dP/da) / (dP/dx) (the weight x^a e^-x / Gamma(a) cancels: no underflow)."""
    if not (a > 0.0 and x >= 0.0):
        return math.nan
    if x == 0.0:
        return 0.0
    if a == math.inf or x == math.inf:
        return math.nan if sample else 0.0
    if x < a + 1.0:
        s, ds = _lower_series(a, x)
        t = s * (math.log(x) - digamma_f64(a + 1.0)) + ds   # d/da of P, over the weight / a
        if sample:
            return -x * t / a
        return math.exp(_log_gamma_weight(a, x) - math.log(a)) * t
    f, df = _upper_fraction(a, x)
    t = f * (math.log(x) - digamma_f64(a)) + df             # d/da of Q, over the weight
    if sample:
        return x * t
    return -math.exp(_log_gamma_weight(a, x)) * t


@numba.njit(**_SJ)
def igamma_grad_a_f64(a, x):
    """dP(a, x)/da, the a-derivative of the regularized lower incomplete gamma function."""
    return _igamma_da(np.float64(a), np.float64(x), False)


@numba.njit(**_SJ)
def random_gamma_grad_f64(a, x):
    """d x / d a of a Gamma(a, 1) sample x held at its quantile: -(dP/da) / (dP/dx)."""
    return _igamma_da(np.float64(a), np.float64(x), True)


@numba.njit(**_SJ)
def igamma_da_array(a, x, sample):
    """_igamma_da over two flat float64 arrays of one size (the eager impls)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = _igamma_da(a[i], x[i], sample)
    return out


# ---------------------------------------------------------------------------------------------
# Incomplete beta

@numba.njit(**_SJ)
def _lentz_step(v, num, tiny):
    """1 + num * v (or num / v), kept away from 0."""
    r = 1.0 + num * v
    return r if abs(r) >= tiny else tiny


@numba.njit(**_SJ)
def _beta_fraction(a, b, x):
    """The continued fraction 1/(1+ d1/(1+ d2/(1+ ...))) of DLMF 8.17.22:
    I_x(a, b) = x^a (1-x)^b / (a B(a, b)) times it. Fast for x < (a + 1) / (a + b + 2)."""
    c = 1.0
    d = 1.0 / _lentz_step(1.0, -(a + b) * x / (a + 1.0), _TINY)
    h, delta = d, 0.0
    for m in range(1, _MAX_TERMS):
        for num in (m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))):
            d = 1.0 / _lentz_step(d, num, _TINY)
            c = _lentz_step(1.0 / c, num, _TINY)
            delta = c * d
            h *= delta
        if abs(delta - 1.0) <= _EPS:
            break
    return h


@numba.njit(**_SJ)
def _lgamma_ratio(a, b):
    """log Gamma(b) - log Gamma(a + b) for b >= 10, by Stirling's series (the two terms,
    each about b log b, would cancel)."""
    c = a + b
    return (-(b - 0.5) * math.log1p(a / b) - a * math.log(c) + a
            + _stirling_tail(b) - _stirling_tail(c))


@numba.njit(**_SJ)
def _log_beta_small(a, b):
    """log B(a, b) when a or b is under 10 (the other one may be large)."""
    if b >= 10.0:
        return math.lgamma(a) + _lgamma_ratio(a, b)
    if a >= 10.0:
        return math.lgamma(b) + _lgamma_ratio(b, a)
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@numba.njit(**_SJ)
def _log_beta_weight(a, b, x, log_x, log_y):
    """log(x^a (1-x)^b / B(a, b)). For a, b >= 10, with c = a + b, u = (c x - a) / a and
    v = (a - c x) / b (so that a u + b v = 0), it is a log(1 + u) + b log(1 + v), near the
    mean (small u, v) written a log1pmx(u) + b log1pmx(v),
    + log(a b / c) / 2 - log(2 pi) / 2 + stirling(c) - stirling(a) - stirling(b), free of the
    cancellation between the large terms of the direct form."""
    if a < 10.0 or b < 10.0:
        return a * log_x + b * log_y - _log_beta_small(a, b)
    c = a + b
    u, v = (c * x - a) / a, (a - c * x) / b
    if abs(u) <= 0.5 and abs(v) <= 0.5:
        main = a * _log1pmx(u) + b * _log1pmx(v)
    else:                                           # far from the mean: no cancellation
        main = a * math.log(x * c / a) + b * math.log((1.0 - x) * c / b)
    return (main + 0.5 * (math.log(a * b / c) - _LOG_2PI)
            + _stirling_tail(c) - _stirling_tail(a) - _stirling_tail(b))


@numba.njit(**_SJ)
def _betainc_lower(a, b, x, log_x, log_y):
    """I_x(a, b) by the fraction, given log x and log(1 - x)."""
    w = _log_beta_weight(a, b, x, log_x, log_y)
    return math.exp(w - math.log(a)) * _beta_fraction(a, b, x)


@numba.njit(**_SJ)
def _betainc(a, b, x):
    if not (a >= 0.0 and b >= 0.0 and 0.0 <= x <= 1.0) or (a == 0.0 and b == 0.0) or (
            a == math.inf and b == math.inf):
        return math.nan
    # all mass at 0 (a = 0 or b = inf) or at 1 (b = 0 or a = inf)
    if a == 0.0 or b == math.inf:
        return 0.0 if x == 0.0 else 1.0
    if b == 0.0 or a == math.inf:
        return 1.0 if x == 1.0 else 0.0
    if x == 0.0 or x == 1.0:
        return x
    log_x, log_y = math.log(x), math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return _betainc_lower(a, b, x, log_x, log_y)
    j = _betainc_lower(b, a, 1.0 - x, log_y, log_x)
    # a result under 1/10 from 1 - j would cancel (small b puts it past the switch point):
    # the direct fraction still converges there
    return 1.0 - j if j <= 0.9 else _betainc_lower(a, b, x, log_x, log_y)


@numba.njit(**_SJ)
def betainc_f64(a, b, x):
    """The regularized incomplete beta function I_x(a, b)."""
    return _betainc(np.float64(a), np.float64(b), np.float64(x))
