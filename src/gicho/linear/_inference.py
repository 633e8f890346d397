"""Inference statistics of a least-squares fit and the printed summary.

Definitions follow statsmodels' ``OLS`` / ``WLS`` results (Greene, *Econometric Analysis*),
so the numbers can be compared one to one:

* ``scale = SSR / df_resid`` with ``df_resid = n - rank`` (the intercept counts in the rank);
* classical covariance ``scale * (X^T W X)^-1``; heteroscedasticity-consistent ``HC0``-``HC3``
  (White 1980; MacKinnon & White 1985): ``(X^T W X)^-1 M (X^T W X)^-1`` with
  ``M = sum_i w_i^2 e_i^2 c_i x_i x_i^T``, ``c = 1, n / df_resid, 1 / (1 - h), 1 / (1 - h)^2``;
* p-values and intervals from Student's t with ``df_resid`` degrees of freedom (classical) or
  the normal distribution (robust), as statsmodels' default ``use_t``;
* ``R^2 = 1 - SSR / TSS`` (TSS centred when the model has a constant), adjusted ``R^2``, the
  F statistic (a Wald test of all non-constant coefficients under a robust covariance),
  Gaussian log-likelihood ``-n/2 (1 + log 2 pi + log(SSR / n)) + 1/2 sum log w``, AIC, BIC.

Aliased coefficients (rank-deficient designs) have NaN standard errors, t, p and intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from gicho.linear._solve import GramSystem, Solution
from gicho.moments import Moments

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")


@dataclass
class OLSStatistics:
    """Per-target statistics; arrays have a leading target axis ``k``."""

    params: np.ndarray  # (k, P): [intercept, coef...] (intercept only with fit_intercept)
    cov_params: np.ndarray  # (k, P, P)
    bse: np.ndarray  # (k, P)
    tvalues: np.ndarray
    pvalues: np.ndarray
    ssr: np.ndarray  # (k,)
    centered_tss: np.ndarray
    ess: np.ndarray
    rsquared: np.ndarray
    rsquared_adj: np.ndarray
    fvalue: np.ndarray
    f_pvalue: np.ndarray
    llf: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    scale: np.ndarray
    df_model: float
    df_resid: float
    nobs: int
    k_constant: int
    use_t: bool
    cov_type: str
    param_names: list[str] = field(default_factory=list)


def _param_cov_unit(sol: Solution, system: GramSystem) -> np.ndarray:
    """``(X^T W X)^+`` for the parameter vector [intercept, coef] in original units."""
    C = sol.cov_unit
    if not system.fit_intercept:
        return C.copy()
    p = C.shape[0]
    E = sol.estimable
    mx = np.where(E, system.mean_x, 0.0)
    Cz = np.where(np.outer(E, E), C, 0.0)
    out = np.full((p + 1, p + 1), np.nan)
    out[1:, 1:] = C
    # beta_0 = mean_y - mean_x^T beta: var = 1/W + mean^T C mean, cov = -C mean
    intercept_ok = bool(E.all()) or sol.solver != "svd"
    if intercept_ok:
        cross = -(Cz @ mx)
        out[0, 0] = 1.0 / system.weight_sum + mx @ Cz @ mx
        out[0, 1:] = np.where(E, cross, np.nan)
        out[1:, 0] = out[0, 1:]
    return out


def robust_meat(
    sol: Solution,
    system: GramSystem,
    X: np.ndarray,
    resid: np.ndarray,
    w: np.ndarray | None,
    cov_type: str,
    df_resid: float,
) -> list[np.ndarray]:
    """HC "meat" matrices, one (P, P) per target, in centred coordinates [1, x - mean].

    ``resid`` (n, k) are the unweighted residuals y - X beta - beta_0.
    """
    n = X.shape[0]
    E = sol.kept  # all solved-for columns: the sandwich is masked to estimable ones afterwards
    center = system.mean_x[E] if system.fit_intercept else 0.0
    sw = np.ones(n) if w is None else np.sqrt(w)
    Z = (X[:, E] - center) * sw[:, None]  # sqrt(w) (x - mean): the whitened design rows
    if system.fit_intercept:
        Z = np.concatenate([sw[:, None], Z], axis=1)
    lev = None
    if cov_type in ("HC2", "HC3"):
        Tk = sol.whiten(Z[:, 1:] if system.fit_intercept else Z)
        lev = np.einsum("ij,ij->i", Tk, Tk)
        if system.fit_intercept:
            lev += sw**2 / system.weight_sum
    meats = []
    for t in range(resid.shape[1]):
        u2 = (sw * resid[:, t]) ** 2  # squared whitened residuals
        if cov_type == "HC1":
            u2 = u2 * (n / df_resid)
        elif cov_type == "HC2":
            u2 = u2 / (1.0 - lev)
        elif cov_type == "HC3":
            u2 = u2 / (1.0 - lev) ** 2
        meats.append((Z * u2[:, None]).T @ Z)
    return meats


def compute_statistics(
    sol: Solution,
    system: GramSystem,
    ssr: np.ndarray,
    sum_log_w: float,
    *,
    cov_type: str = "nonrobust",
    use_t: bool | None = None,
    meats: list[np.ndarray] | None = None,
    k_constant: int,
    const_idx: int | None,
    param_names: list[str],
) -> OLSStatistics:
    """All statistics from a solution, the exact SSR and (robust) the HC meat matrices."""
    p, k = sol.coef.shape
    n = system.n_samples
    fit_icpt = system.fit_intercept
    P = p + int(fit_icpt)
    intercept = system.mean_y - system.mean_x @ sol.coef if fit_icpt else None
    params = np.concatenate([intercept[:, None], sol.coef.T], axis=1) if fit_icpt else sol.coef.T.copy()
    rank = sol.rank + int(fit_icpt)
    df_resid = float(n - rank)
    df_model = float(rank - k_constant)
    use_t = (cov_type == "nonrobust") if use_t is None else use_t

    # TSS: centred when the model has a constant (statsmodels' convention)
    W = system.weight_sum
    yy_c = np.diagonal(system.c) if fit_icpt else np.diagonal(system.c) - W * system.mean_y**2
    yy_raw = yy_c + W * system.mean_y**2
    tss = yy_c if k_constant else yy_raw
    ess = tss - ssr
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = ssr / df_resid if df_resid > 0 else np.full(k, np.nan)
        rsquared = 1.0 - ssr / tss
        rsquared_adj = 1.0 - (n - k_constant) / df_resid * (1.0 - rsquared) if df_resid > 0 else np.full(k, np.nan)
        llf = -0.5 * n * (1.0 + np.log(2 * np.pi) + np.log(ssr / n)) + 0.5 * sum_log_w
    k_params = df_model + k_constant
    aic = -2.0 * llf + 2.0 * k_params
    bic = -2.0 * llf + np.log(n) * k_params

    C = _param_cov_unit(sol, system)  # (P, P), NaN on non-estimable entries
    cov = np.empty((k, P, P))
    for t in range(k):
        if cov_type == "nonrobust":
            cov[t] = scale[t] * C
        else:
            cov[t] = _robust_cov(C, meats[t], system, sol)
    with np.errstate(divide="ignore", invalid="ignore"):
        bse = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
        bse[~np.isfinite(np.diagonal(cov, axis1=1, axis2=2))] = np.nan
        tvalues = params / bse
    dist = stats.t(df_resid) if use_t else stats.norm()
    pvalues = 2.0 * dist.sf(np.abs(tvalues)) if (df_resid > 0 or not use_t) else np.full_like(tvalues, np.nan)

    fvalue, f_pvalue = _f_test(params, cov, ess, ssr, df_model, df_resid, cov_type, const_idx, fit_icpt, k_constant)
    return OLSStatistics(
        params=params, cov_params=cov, bse=bse, tvalues=tvalues, pvalues=pvalues, ssr=ssr,
        centered_tss=yy_c, ess=ess, rsquared=rsquared, rsquared_adj=rsquared_adj,
        fvalue=fvalue, f_pvalue=f_pvalue, llf=llf, aic=aic, bic=bic, scale=scale,
        df_model=df_model, df_resid=df_resid, nobs=n, k_constant=k_constant, use_t=use_t,
        cov_type=cov_type, param_names=param_names,
    )  # fmt: skip


def _robust_cov(C: np.ndarray, meat_c: np.ndarray, system: GramSystem, sol: Solution) -> np.ndarray:
    """Sandwich ``B M B`` in centred coordinates, mapped back to [intercept, coef]."""
    P = C.shape[0]
    K = sol.kept
    idx = np.flatnonzero(np.concatenate([[True], K]) if system.fit_intercept else K)
    # bread in centred coordinates: blockdiag(1/W, C_slopes) (the centred columns are
    # W-orthogonal to the constant)
    if system.fit_intercept:
        B = np.zeros((len(idx), len(idx)))
        B[0, 0] = 1.0 / system.weight_sum
        B[1:, 1:] = sol.bread
        T = np.eye(len(idx))
        T[0, 1:] = -system.mean_x[K]  # beta_0 = beta_0c - mean^T beta
    else:
        B = sol.bread
        T = np.eye(len(idx))
    Vc = B @ meat_c @ B
    out = np.full((P, P), np.nan)
    out[np.ix_(idx, idx)] = T @ Vc @ T.T
    out[~np.isfinite(C)] = np.nan  # non-estimable entries stay NaN, as in the classical case
    return out


def _f_test(params, cov, ess, ssr, df_model, df_resid, cov_type, const_idx, fit_icpt, k_constant):
    k = params.shape[0]
    fvalue = np.full(k, np.nan)
    f_pvalue = np.full(k, np.nan)
    if df_model <= 0 or df_resid <= 0:
        return fvalue, f_pvalue
    for t in range(k):
        if cov_type == "nonrobust":
            with np.errstate(divide="ignore", invalid="ignore"):  # a perfect fit: F = inf
                fvalue[t] = (ess[t] / df_model) / (ssr[t] / df_resid)
            f_pvalue[t] = stats.f.sf(fvalue[t], df_model, df_resid)
            continue
        # Wald test that every non-constant, estimable coefficient is zero
        if k_constant and not fit_icpt and const_idx is None:
            continue  # an implicit constant (dummies): no coefficient to drop; statsmodels gives nan
        drop = 0 if fit_icpt else const_idx
        sel = [i for i in range(params.shape[1]) if i != drop and np.isfinite(cov[t][i, i])]
        if not sel:
            continue
        b = params[t, sel]
        V = cov[t][np.ix_(sel, sel)]
        q = len(sel)
        fvalue[t] = float(b @ np.linalg.solve(V, b)) / q
        f_pvalue[t] = stats.f.sf(fvalue[t], q, df_resid)
    return fvalue, f_pvalue


def conf_int(st: OLSStatistics, alpha: float) -> np.ndarray:
    """(k, P, 2) confidence intervals at level ``1 - alpha``."""
    q = stats.t.ppf(1 - alpha / 2, st.df_resid) if st.use_t else stats.norm.ppf(1 - alpha / 2)
    return np.stack([st.params - q * st.bse, st.params + q * st.bse], axis=-1)


class OLSSummary:
    """The coefficient table of a fit plus the model statistics.

    ``str(summary)`` is a readable table; ``summary.to_frame()`` a pandas DataFrame (indexed
    by parameter name); ``summary["coef"]`` one column as an array; ``summary.stats`` a dict
    of the model-level numbers.
    """

    def __init__(
        self, st: OLSStatistics, target: int, alpha: float, extra: dict[str, Any], names: list[str] | None = None
    ) -> None:
        ci = conf_int(st, alpha)[target]
        stat = "t" if st.use_t else "z"
        lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        self.index = list(st.param_names if names is None else names)
        self.columns = ["coef", "std err", stat, f"P>|{stat}|", lo, hi]
        self._data = {
            "coef": st.params[target], "std err": st.bse[target], stat: st.tvalues[target],
            f"P>|{stat}|": st.pvalues[target], lo: ci[:, 0], hi: ci[:, 1],
        }  # fmt: skip
        self.stats = {
            **extra,
            "No. Observations": st.nobs,
            "Df Residuals": st.df_resid,
            "Df Model": st.df_model,
            "Covariance Type": st.cov_type,
            "R-squared": float(st.rsquared[target]),
            "Adj. R-squared": float(st.rsquared_adj[target]),
            "F-statistic": float(st.fvalue[target]),
            "Prob (F-statistic)": float(st.f_pvalue[target]),
            "Log-Likelihood": float(st.llf[target]),
            "AIC": float(st.aic[target]),
            "BIC": float(st.bic[target]),
        }

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self._data:
            raise KeyError(f"unknown column {column!r}; allowed: {', '.join(map(repr, self.columns))}")
        return self._data[column]

    def to_frame(self) -> Any:
        """The coefficient table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self._data, index=self.index, columns=self.columns)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{parameter: {column: value}}``."""
        return {name: {c: float(self._data[c][i]) for c in self.columns} for i, name in enumerate(self.index)}

    def __str__(self) -> str:
        def fmt(v: Any) -> str:
            if isinstance(v, str):
                return v
            if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e9):
                return str(int(v))
            return f"{v:.4g}"

        items = [(k, fmt(v)) for k, v in self.stats.items()]
        half = (len(items) + 1) // 2
        left, right = items[:half], items[half:]
        lines = []
        for i in range(half):
            a = f"{left[i][0] + ':':<20}{left[i][1]:>16}"
            b = f"{right[i][0] + ':':<22}{right[i][1]:>14}" if i < len(right) else ""
            lines.append(f"{a}    {b}".rstrip())
        width_name = max(8, *(len(n) for n in self.index))
        header = " " * width_name + "".join(f"{c:>12}" for c in self.columns)
        rule = "=" * max(len(header), max(len(x) for x in lines))
        rows = []
        for i, name in enumerate(self.index):
            cells = []
            for c in self.columns:
                v = self._data[c][i]
                cells.append(f"{'nan':>12}" if not np.isfinite(v) else f"{v:>12.4g}" if c != "coef" else f"{v:>12.6g}")
            rows.append(f"{name:<{width_name}}" + "".join(cells))
        body = [rule, *lines, rule, header, "-" * len(rule), *rows, rule]
        if any(not np.isfinite(self._data["std err"][i]) for i in range(len(self.index))):
            body.append("NaN standard errors: aliased (linearly dependent) or non-estimable coefficients.")
        return "\n".join(body)

    def __repr__(self) -> str:
        return self.__str__()


def design_condition_number(m: Moments, fit_intercept: bool) -> float:
    """statsmodels' ``condition_number``: sqrt(max / min eigenvalue) of ``X^T W X`` for the
    design as given, with the constant column when there is an intercept (not centred, not
    scaled: it depends on the units and the means of the features)."""
    W, mean = m.weight_sum_, m.mean_x_
    with np.errstate(all="ignore"):
        G = m.xx_ + W * np.outer(mean, mean)  # sum w x x^T
        if fit_intercept:
            G = np.block([[np.array([[W]]), W * mean[None, :]], [W * mean[:, None], G]])
        if not np.isfinite(G).all():
            return float("nan")  # X^T W X itself overflows float64 (data beyond ~1e154)
        lam = np.linalg.eigvalsh(0.5 * (G + G.T))
        ratio = lam[-1] / lam[0] if lam[0] > 0 else np.inf
        return float(np.sqrt(ratio))
