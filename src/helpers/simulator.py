"""The Norman-scaffold simulator: the embedded default data of the book.

Norman et al.'s expression matrix cannot be downloaded here, but its scaffold is real and ships
in ``data/reference/``: the 284 GEARS conditions and their cell counts, Norman's Theil–Sen GI
fits, GEARS' GI labels, Norman's GI-manifold clusters, GEARS' high-mean genes and GO
annotations. The simulator draws single-cell counts on that scaffold and returns an AnnData in
exactly GEARS' format, so every later step runs the same code on simulated and real data.

The model (log rates; ``g`` a gene, ``c`` a cell, ``k`` a latent gene program)::

    programs      W[k, g]   sparse: each program moves a few % of genes, N(0, program_loading_sd)
    control cell  log λ[c, g] = log μ[g] + log ℓ[c] + z[c] · W[:, g] + ρ · (z[c] · m̂[p]) 1[g = p]
                  z[c] ~ N(0, natural_program_sd²)  natural program activity
                  ℓ[c] ~ LogNormal(0, library_log_sd)  library size
                  ρ = coexpression_strength: a regulator p co-varies with the program it drives
    shared axes   W also holds a few dense rows, axes most perturbations move along (Norman's
                  screen: erythroid vs myeloid differentiation, growth)
    single p      d[p] = m[p] · W                  downstream effect, m[p] = s[p] · unit(
                      √(1 − σ) · unit(top_n(cluster signature + GO-smoothed + private draw)),
                      √σ · unit(common + map direction + GO-smoothed + private draw))
                  the first part on the sparse programs, the second on the shared axes (σ =
                  shared_axis_share); every perturbation shares the common direction, genes
                  close on Norman's GI map (his UMAP of the perturbations' profiles) get close
                  map directions (a Gaussian-process draw over the map), GO neighbours share
                  draws: so singles resemble each other as Norman's do, pair by pair
                  (helpers.gi.similarity_statistics)
    cell in A+ctrl  log λ += e_A · ((d[A] − k[A]) 1[g ≠ A] + a · 1[g = A])   a = target_activation_lfc
                  k[A] a constant that keeps the cells' expected total at control's (a
                  perturbation moves a cell's mRNA between genes, not its amount), and no
                  gene above ``max_gene_share`` of a median library
    cell in A+B     log λ += e · L[A+B]          one effective activation e per pair cell
                  e ~ Beta(efficiency_a, efficiency_b): per-cell CRISPRa efficiency
    counts        y[c, g] ~ NegativeBinomial(mean λ[c, g], inverse dispersion nb_theta)
    processing    X = log1p(normalize_total(y, 1e4)), as GEARS' processed Norman

Pairs are set on the scale the genetic-interaction analysis scores: the mean over cells of
log-normalised expression. With E[·] the population mean of a condition's cells (noise-free:
an expectation, not a sample), δ_A = E[A] − E[ctrl] and Norman's Theil–Sen coefficients
c_A, c_B (1, 1 where Norman has no fit), a pair's expected mean is

    E[A+B] = E[ctrl] + c_A δ_A + c_B δ_B + ρ[A+B]

ρ, the pair's departure from additivity, moves the few genes (``residual_gene_share``) where a
random program mix, mapped to the scored scale, is largest; it is orthogonal to the fitted part
on those genes and sized so that Pearson r(fitted, pair change) equals Norman's ``corr_fit``
for the pair (the median of Norman's fits where he has none). Being sparse, it leaves a robust
(Theil–Sen) fit of the pair on its singles at Norman's coefficients. L[A+B] is solved per gene
(Newton steps) so that the cells' expectation is E[A+B]; that expectation, for every
condition, is saved as the noise-free truth. The expectations are computed exactly over the
negative-binomial noise (a table of E[log1p(s·y)]) and averaged over ``expectation_cells``
reference cells (program activity, library size, efficiency) shared by all conditions; each
cell's normalisation uses its expected total count.

The cost in realism: a real pair cell activates its two genes with two independent
efficiencies, so its profile mixes "mostly A", "mostly B" and "both"; here the pair acts as one
unit in each cell. The benefit: the interaction the simulator is given is the one the analysis
measures, so a model's GI scores are compared with a truth that means what it says (with two
efficiencies on log rates, normalisation and log1p shift and shrink the given coefficients).

The parameters below were chosen once from the biology and from Norman's data (orders of
magnitude of 10x K562 libraries, CRISPRa target induction, the spread of Norman's fits; the
single effects' strength so that the cells' profile correlations match those Norman measured,
:func:`helpers.gi.profile_correlations`; the shared axes so that the singles' similarity
statistics match his; ``interaction_scale`` so that GI magnitudes estimated from the cells
distribute as his estimates when measured as he measured them: each a grid, the closest match,
``benchmarks/simulator_fidelity.py``)
and are never tuned to make a model look better.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import beta, norm

from helpers import reference
from helpers.conditions import CONTROL, condition_genes, genes_of
from helpers.graphs import go_jaccard_edges
from helpers.progress import progress_bar


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulator parameters (see the module docstring for the model they enter)."""

    seed: int = 0
    # Baseline means, in counts per cell at the median library. Depth from Norman's counts layer:
    # median 2,999 UMIs per cell over its 5,045 genes, of which GEARS' 2,967 high-mean genes (this
    # panel) carry nearly all (>99% under a log-normal fit to its depth and 8% detection). The
    # high-mean genes' means are log-normal with sd ``high_mean_log_sd``, rescaled so that a
    # control cell's expected total is ``depth_umis`` (~17% of the panel detected per cell; Norman: 409 genes, 13%).
    depth_umis: float = 2999.0
    high_mean_log_sd: float = 3.0
    regulator_log_mean: float = float(np.log(0.1))
    regulator_log_sd: float = 1.0
    library_log_sd: float = 0.35
    nb_theta: float = 10.0  # inverse dispersion typical of highly expressed genes in 10x data
    # Gene programs
    n_programs: int = 30
    program_density: float = 0.3  # share of genes each program moves (K562 differentiation and cell-cycle programs shift much of the transcriptome)
    program_loading_sd: float = 0.5
    natural_program_sd: float = 0.3
    coexpression_strength: float = 0.6
    # Shared axes: a few dense programs most perturbations move along (Norman's screen: erythroid
    # vs myeloid differentiation, growth), so that singles resemble each other as his do.
    # Calibrated (grids, the closest match; benchmarks/RESULTS.md) on the statistics Norman's 125
    # fitted pairs give from his cells: median corr_singles 0.404, its Spearman with GO Jaccard
    # 0.325, its medians within and across GI-manifold cluster labels 0.517 and 0.220, the
    # Kolmogorov-Smirnov distance of the whole distribution; from the simulated cells (seed 0)
    # 0.383, 0.334, 0.430, 0.282, KS 0.080
    n_shared_axes: int = 6
    shared_axis_density: float = 0.5  # share of genes each shared axis moves
    shared_axis_share: float = 0.7  # share of a single effect's size (squared norm) on the shared axes
    common_weight: float = 0.0  # a direction every perturbation shares (calibrated to none: Norman's
    # pairs across two GI clusters barely correlate, median 0.08)
    manifold_weight: float = 1.0  # a direction set by the gene's place on Norman's GI map
    manifold_length_scale: float = 4.0  # map units (genes' UMAP coordinates spread with sd ~6)
    # deal the map's places out among the genes at random: the singles stay as alike as Norman's,
    # but which genes are alike no longer follows his screen (nor, through it, GO)
    shuffle_manifold: bool = False
    # Single perturbations
    programs_per_gene: int = 3
    # Calibrated to the screen's signal under its own noise: with Norman's cell counts and depth,
    # the median over Norman's 125 fitted pairs of Pearson r(pair's change, sum of the singles'
    # changes) from the cells is 0.857 at this strength (Norman's measured corr_sum: 0.849; 0.845
    # at 1.7, where the cells' GI magnitudes track Norman's with r 0.79 < 0.8; 0.870 at 2.4, 0.890
    # at 3.0; benchmarks/simulator_fidelity.py, benchmarks/RESULTS.md)
    effect_strength_log_mean: float = float(np.log(2.0))
    effect_strength_log_sd: float = 0.7  # some CRISPRa targets barely act, a few act strongly
    cluster_weight: float = 1.5  # a Norman cluster's shared sparse programs
    # how much GO annotation predicts an effect beyond Norman's map (which itself follows GO:
    # Spearman 0.31 at go_weight 0); calibrated on the Spearman with GO Jaccard (0.334 here, 0.374
    # at 1.0, 0.419 at 2.0; Norman 0.325)
    go_weight: float = 0.5
    private_weight: float = 0.7
    go_neighbours: int = 10
    target_activation_lfc: float = 4.0  # ~55-fold at full efficiency (CRISPRa: 10- to 1000-fold)
    # Combinations: the residual's size comes from Norman's corr_fit (see above)
    # Norman's coefficients are estimates from noisy singles, pulled by that noise towards zero;
    # the truth behind them lies further out. The noise-free truth keeps the direction of his
    # fitted (c_a, c_b) and sets its magnitude M to max(interaction_scale · M_Norman −
    # interaction_offset, 0) (pairs without a fit stay additive, 1 and 1), so that the
    # magnitudes estimated from the simulated cells *as Norman estimated his*
    # (helpers.gi.norman_scale_means) distribute as his. Calibrated (a grid, the closest match in
    # slope against his fits, median and share above 1.15; benchmarks/RESULTS.md): from the
    # cells (seed 0) slope 0.93, r 0.92, median 1.08, 34% above (Norman: 1.02, 32%)
    interaction_scale: float = 1.3
    interaction_offset: float = 0.15
    residual_gene_share: float = 0.03  # share of genes a pair's departure from additivity moves
    max_gene_share: float = 0.1  # most of a median library one gene of a perturbed cell may hold
    pair_solver_iterations: int = 20  # Newton steps at most; stops at 1e-3 in expected mean
    # Cells
    efficiency_a: float = 4.0  # Beta(4, 2): mean efficiency 0.67, some cells barely activated
    efficiency_b: float = 2.0
    target_sum: float = 1e4
    expectation_cells: int = 256  # reference cells the noise-free expectations average over
    cell_type: str = "K562"

    @property
    def mean_efficiency(self) -> float:
        return self.efficiency_a / (self.efficiency_a + self.efficiency_b)


@dataclass(frozen=True)
class Scaffold:
    """What the simulator builds on: conditions with real cell counts, genes and GI structure."""

    conditions: pd.DataFrame  # condition, n_cells (control included as 'ctrl')
    genes: list[str]
    combo_coefficients: dict[str, tuple[float, float]]  # combo → (c of 1st gene, c of 2nd gene)
    combo_corr_fit: Mapping[str, float] = field(default_factory=dict)  # combo → Norman's corr_fit
    neomorphic: frozenset[str] = frozenset()
    clusters: Mapping[str, int] = field(default_factory=dict)  # gene → cluster (-1 = none)
    positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # gene → Norman's GI-map UMAP
    gene2go: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def perturbed_genes(self) -> list[str]:
        return genes_of(self.conditions.condition)


def _order_free(condition: str) -> frozenset[str]:
    return frozenset(condition_genes(condition))


def norman_scaffold(n_high_mean_genes: int | None = None) -> Scaffold:
    """The real Norman scaffold from ``data/reference``.

    Genes are GEARS' high-mean genes (all 2,967, or ``n_high_mean_genes`` spread evenly along
    the list) plus the 105 perturbed genes.
    """
    conditions = reference.norman_conditions()
    perturbed = genes_of(conditions.condition)
    high_mean = reference.high_mean_genes()
    if n_high_mean_genes is not None:
        if not 0 < n_high_mean_genes <= len(high_mean):
            raise ValueError(f"n_high_mean_genes must be in 1..{len(high_mean)}, got {n_high_mean_genes}")
        keep = np.linspace(0, len(high_mean) - 1, n_high_mean_genes).round().astype(int)
        high_mean = [high_mean[i] for i in keep]
    genes = high_mean + sorted(set(perturbed) - set(high_mean))

    fits = reference.gi_fits().set_index("condition")
    coefficients = {c: ((float(fits.at[c, "c_a"]), float(fits.at[c, "c_b"])) if c in fits.index
                        else (1.0, 1.0))
                    for c in conditions.condition if len(condition_genes(c)) == 2}
    corr_fit = {c: float(fits.at[c, "corr_fit"]) for c in coefficients if c in fits.index}
    neomorphic_sets = {_order_free(c) for c in reference.gi_types()["NEOMORPHIC"]}
    neomorphic = frozenset(c for c in coefficients if _order_free(c) in neomorphic_sets)
    manifold = reference.single_clusters()
    clusters = dict(zip(manifold.gene, manifold.cluster))
    positions = {g: (float(x), float(y)) for g, x, y in zip(manifold.gene, manifold.umap_x, manifold.umap_y)}
    return Scaffold(conditions=conditions[["condition", "n_cells"]], genes=genes,
                    combo_coefficients=coefficients, combo_corr_fit=corr_fit, neomorphic=neomorphic,
                    clusters={g: int(clusters.get(g, -1)) for g in perturbed},
                    positions={g: positions[g] for g in perturbed if g in positions},
                    gene2go=reference.gene2go())


def _sparse_mix(rng: np.random.Generator, n_programs: int, n_active: int) -> np.ndarray:
    mix = np.zeros(n_programs)
    mix[rng.choice(n_programs, n_active, replace=False)] = rng.normal(size=n_active)
    return mix


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _manifold_directions(positions: Mapping[str, tuple[float, float]], genes: list[str], n_axes: int,
                         config: SimulatorConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each gene's direction on the shared axes from its place on Norman's GI map (his UMAP of
    the perturbations' profiles): a Gaussian-process draw over the map, squared-exponential
    kernel of length ``manifold_length_scale`` (map units), so genes close on the map act alike,
    as they did in his cells. ``shuffle_manifold`` deals the places out among the genes at random
    (the similarity structure kept, its link to the genes' identity and annotation cut). A gene
    without a place draws on its own."""
    placed = [g for g in genes if g in positions]
    points = np.array([positions[g] for g in placed]).reshape(-1, 2)
    if config.shuffle_manifold:
        points = points[rng.permutation(len(points))]
    distance2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
    kernel = np.exp(-distance2 / (2 * config.manifold_length_scale**2)) + 1e-6 * np.eye(len(placed))
    draws = np.linalg.cholesky(kernel) @ rng.normal(size=(len(placed), n_axes))  # (placed, axes)
    directions = {g: rng.normal(size=n_axes) for g in genes if g not in positions}
    directions.update(zip(placed, draws))
    return directions


def _keep_top(vector: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(vector)
    top = np.argsort(-np.abs(vector), kind="stable")[:n]
    out[top] = vector[top]
    return out


@dataclass(frozen=True)
class _Parameters:
    log_mu: np.ndarray  # (genes,)
    programs: np.ndarray  # (programs, genes) W
    mixes: dict[str, np.ndarray]  # perturbed gene → (programs,) m[p]
    strength: dict[str, float]  # perturbed gene → s[p]
    downstream: dict[str, np.ndarray]  # perturbed gene → (genes,) d[p]
    residual_directions: dict[str, np.ndarray]  # combo → (genes,) ρ's direction on the log-rate scale


def _draw_parameters(scaffold: Scaffold, config: SimulatorConfig,
                     rng: np.random.Generator) -> _Parameters:
    genes, perturbed = scaffold.genes, scaffold.perturbed_genes
    n_genes, k = len(genes), config.n_programs
    # perturbed genes (regulators, most barely detected) draw from their own baseline, so that
    # CRISPRa lifts each from a level typical of a regulator, not from the sparse panel's far tail
    is_high_mean = np.array([g not in perturbed for g in genes])
    # truncated at ±2.5 sd: no single gene carries more than ~1% of a library, as in GEARS'
    # variable-gene panel (a log-normal's far tail would hand one gene a quarter of every cell)
    high_mean_draw = np.clip(rng.normal(0.0, 1.0, n_genes), -2.5, 2.5) * config.high_mean_log_sd
    log_mu = np.where(is_high_mean, high_mean_draw,
                      rng.normal(config.regulator_log_mean, config.regulator_log_sd, n_genes))

    # rows: the sparse programs, then the dense shared axes
    n_axes = config.n_shared_axes
    programs = np.zeros((k + n_axes, n_genes))
    for row, density in zip(programs, [config.program_density] * k + [config.shared_axis_density] * n_axes):
        n_moved = max(2, int(round(density * n_genes)))
        moved = rng.choice(n_genes, n_moved, replace=False)
        row[moved] = rng.normal(0.0, config.program_loading_sd, n_moved)
    # expected counts of a control cell at the median library: μ · E[exp(z · W)]
    expected = np.exp(log_mu + 0.5 * config.natural_program_sd**2 * (programs**2).sum(axis=0))
    log_mu[is_high_mean] += np.log(max(config.depth_umis - expected[~is_high_mean].sum(), 1.0)
                                   / expected[is_high_mean].sum())

    # Each Norman GI-manifold cluster shares a program signature; a gene's direction along the
    # shared axes follows its place on his GI map; GO neighbours share draws; every perturbation
    # shares the common direction (weight 0 by default).
    cluster_ids = sorted({c for c in scaffold.clusters.values() if c >= 0})
    signatures = {c: _sparse_mix(rng, k, 2) for c in cluster_ids}
    private = {g: _sparse_mix(rng, k, 2) for g in perturbed}
    common = rng.normal(size=n_axes)
    common /= max(np.linalg.norm(common), 1e-12)
    manifold_axes = _manifold_directions(scaffold.positions, perturbed, n_axes, config, rng)
    private_axes = {g: rng.normal(size=n_axes) for g in perturbed}
    edges = go_jaccard_edges(scaffold.gene2go, perturbed, threshold=0.0)
    edges = edges[edges.source != edges.target]
    go_smoothed = {g: np.zeros(k) for g in perturbed}
    go_smoothed_axes = {g: np.zeros(n_axes) for g in perturbed}
    for target, group in edges.groupby("target"):
        top = group.nlargest(config.go_neighbours, "importance")
        weights = top.importance.to_numpy() / top.importance.sum()
        go_smoothed[target] = sum(w * private[s] for w, s in zip(weights, top.source))
        go_smoothed_axes[target] = sum(w * private_axes[s] for w, s in zip(weights, top.source))
    strength = {g: float(np.exp(rng.normal(config.effect_strength_log_mean,
                                           config.effect_strength_log_sd))) for g in perturbed}
    mixes = {}
    for g in perturbed:
        cluster = scaffold.clusters.get(g, -1)
        sparse = (config.cluster_weight * signatures.get(cluster, np.zeros(k))
                  + config.go_weight * go_smoothed[g] + config.private_weight * private[g])
        sparse = _keep_top(sparse, config.programs_per_gene)
        axes = (config.common_weight * common + config.manifold_weight * manifold_axes[g]
                + config.go_weight * go_smoothed_axes[g] + config.private_weight * private_axes[g])
        mix = np.concatenate([np.sqrt(1.0 - config.shared_axis_share) * _unit(sparse),
                              np.sqrt(config.shared_axis_share) * _unit(axes)])
        mixes[g] = strength[g] * _unit(mix)
    downstream = {g: mixes[g] @ programs for g in perturbed}

    residual_directions = {combo: _sparse_mix(rng, k, config.programs_per_gene) @ programs[:k]
                           for combo in scaffold.combo_coefficients}
    return _Parameters(log_mu, programs, mixes, strength, downstream, residual_directions)


def true_coefficients(scaffold: Scaffold, config: SimulatorConfig, condition: str) -> tuple[float, float]:
    """The noise-free truth's coefficients of a pair: Norman's fit, its magnitude M mapped to
    max(``interaction_scale`` · M − ``interaction_offset``, 0) with the direction kept; 1 and 1
    (additive) for a pair Norman did not fit and for a single."""
    if condition not in scaffold.combo_corr_fit:
        return 1.0, 1.0
    c_a, c_b = scaffold.combo_coefficients[condition]
    magnitude = float(np.hypot(c_a, c_b))
    if magnitude == 0:
        return 0.0, 0.0
    factor = max(config.interaction_scale * magnitude - config.interaction_offset, 0.0) / magnitude
    return c_a * factor, c_b * factor


def single_effect(parameters: _Parameters, config: SimulatorConfig, gene_index: Mapping[str, int],
                  gene: str) -> np.ndarray:
    """A single perturbation's log-rate change at full efficiency: d[p] on every other gene, the
    CRISPRa induction on the target itself (the programs it drives do not hold it back: a dense
    shared axis would otherwise cancel a strong gene's own induction)."""
    effect = parameters.downstream[gene].copy()
    effect[gene_index[gene]] = config.target_activation_lfc
    return effect


@dataclass(frozen=True)
class ScoredScale:
    """E[log1p(s · y)] for y ~ NegativeBinomial(mean λ, inverse dispersion θ): what a cell with
    rate λ and normalisation factor s (target sum / total count) contributes on average to a
    mean of log-normalised expression. Tabulated on a grid of log λ × log s, read bilinearly."""

    log_rate: np.ndarray  # (n,) evenly spaced
    log_factor: np.ndarray  # (m,) evenly spaced
    table: np.ndarray  # (n, m)

    @classmethod
    @functools.lru_cache(maxsize=4)  # the same table for every simulation of a process (~1 s each)
    def build(cls, theta: float, log_rate_range: tuple[float, float] = (-12.0, 8.0), rate_step: float = 0.05,
              log_factor_range: tuple[float, float] = (np.log(0.05), np.log(500.0)),
              factor_points: int = 80) -> ScoredScale:
        from scipy.stats import nbinom

        log_rate = np.arange(log_rate_range[0], log_rate_range[1] + rate_step / 2, rate_step)
        log_factor = np.linspace(*log_factor_range, factor_points)
        rate = np.exp(log_rate)
        top = int(rate[-1] + 12 * rate[-1] * np.sqrt(1 / rate[-1] + 1 / theta)) + 50  # far into the tail
        y = np.arange(top)
        pmf = nbinom.pmf(y[None, :], theta, theta / (theta + rate[:, None]))  # (n, top)
        table = pmf @ np.log1p(y[:, None] * np.exp(log_factor)[None, :])
        for array in (log_rate, log_factor, table):  # shared between simulations: read-only
            array.flags.writeable = False
        return cls(log_rate, log_factor, table)

    def __call__(self, log_rate: np.ndarray,
                 log_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expected value and its derivatives in log λ and in log s, for ``log_rate`` (R, G) and
        ``log_factor`` (R, 1). Past the grid's top rate, log1p(s·λ) ≈ log(s·λ) (slopes 1);
        below its bottom, ~0."""
        n_rate, n_factor = self.table.shape
        dx = self.log_rate[1] - self.log_rate[0]
        df = self.log_factor[1] - self.log_factor[0]
        position = np.clip((log_rate - self.log_rate[0]) / dx, 0.0, n_rate - 1.000001)
        i = position.astype(np.int64)
        t = position - i
        factor_position = np.clip((log_factor - self.log_factor[0]) / df, 0.0, n_factor - 1.000001)
        j = factor_position.astype(np.int64)  # (R, 1)
        u = factor_position - j
        flat = i * n_factor + j
        table = self.table.ravel()
        t00, t01 = table.take(flat), table.take(flat + 1)
        t10, t11 = table.take(flat + n_factor), table.take(flat + n_factor + 1)
        lower = t00 + u * (t01 - t00)
        upper = t10 + u * (t11 - t10)
        value = lower + t * (upper - lower)
        slope = (upper - lower) / dx
        factor_slope = ((t01 - t00) + t * ((t11 - t10) - (t01 - t00))) / df
        above = log_rate > self.log_rate[-1]
        if above.any():
            value = np.where(above, value + (log_rate - self.log_rate[-1]), value)
            slope = np.where(above, 1.0, slope)
            factor_slope = np.where(above, 1.0, factor_slope)
        return value, slope, factor_slope


def _baseline_log_rates(parameters: _Parameters, config: SimulatorConfig, gene_index: Mapping[str, int],
                        n: int, rng: np.random.Generator, log_library: np.ndarray | None = None,
                        antithetic: bool = False) -> np.ndarray:
    """Unperturbed log rates (n, genes): baseline, library size (drawn unless ``log_library``
    (n,) is given), program activity, and each regulator co-varying with the programs it drives.
    ``antithetic``: program activities come in pairs z, −z (for expectations: their first-order
    errors cancel)."""
    if antithetic:
        half = rng.normal(0.0, config.natural_program_sd, ((n + 1) // 2, parameters.programs.shape[0]))
        z = np.concatenate([half, -half])[:n]
    else:
        z = rng.normal(0.0, config.natural_program_sd, (n, parameters.programs.shape[0]))
    if log_library is None:
        log_library = rng.normal(0.0, config.library_log_sd, n)
    log_rate = parameters.log_mu[None, :] + log_library[:, None] + z @ parameters.programs
    for gene, mix in parameters.mixes.items():
        if gene in gene_index:
            unit = mix / max(np.linalg.norm(mix), 1e-12)
            log_rate[:, gene_index[gene]] += config.coexpression_strength * (z @ unit)
    return log_rate


@dataclass(frozen=True)
class _Expectation:
    """Noise-free population means of log-normalised expression over fixed reference cells."""

    base: np.ndarray  # (R, G) reference cells' unperturbed log rates
    efficiency: np.ndarray  # (R,) their activation efficiencies
    scale: ScoredScale
    log_target_sum: float

    def terms(self, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per reference cell and gene (R, G): expected value, its slopes in log rate and log
        normalisation, and the gene's share of the cell's total."""
        log_rate = self.base + self.efficiency[:, None] * shift[None, :]  # (R, G)
        rate = np.exp(log_rate)
        total = rate.sum(axis=1, keepdims=True)  # (R, 1)
        value, slope, factor_slope = self.scale(log_rate, self.log_target_sum - np.log(total))
        return value, slope, factor_slope, rate / total

    def mean(self, shift: np.ndarray) -> np.ndarray:
        """Expected mean (G,) when every reference cell's log rate moves by its efficiency ×
        ``shift`` (G,)."""
        return self.terms(shift)[0].mean(axis=0)

    def library_preserving(self, shift: np.ndarray, held: int | None = None,
                           iterations: int = 8) -> np.ndarray:
        """``shift`` less the constant that keeps the cells' mean expected total at control's:
        a perturbation changes which genes a cell's mRNA goes to far more than how much mRNA
        there is (Norman's conditions: mean UMIs per cell within 0.5–1.6× of the median). On
        log-normalised expression a constant shift is nearly invisible; on the counts it keeps
        libraries at the screen's depth. The gene ``held`` (a CRISPRa target: its induction comes
        from the guide, not from the cell's programs) keeps its shift. Newton steps on the
        constant (the log total's slope in it is minus the efficiency-weighted share of the
        cells' totals on the genes it moves)."""
        target = float(np.log(np.exp(self.base).sum(axis=1).mean()))  # control's
        moved = np.ones_like(shift)
        if held is not None:
            moved[held] = 0.0
        constant = 0.0
        for _ in range(iterations):
            rate = np.exp(self.base + self.efficiency[:, None] * (shift - constant * moved)[None, :])
            totals = rate.sum(axis=1)
            gap = float(np.log(totals.mean())) - target
            if abs(gap) < 1e-6:
                break
            slope = float((self.efficiency * (rate @ moved)).sum() / totals.sum())
            constant += gap / max(slope, 1e-6)
        return shift - constant * moved

    def newton_step(self, terms: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], shift: np.ndarray,
                    target: np.ndarray, free: np.ndarray) -> np.ndarray:
        """The Newton step from ``shift`` towards ``target`` for the ``free`` genes (the others
        stay where they are), given :meth:`terms` at ``shift`` (computed once per step by the
        caller, which also reads the expected mean from them).

        A gene's mean moves with its own rate and with every cell's normalisation, which all
        genes share: J = D − A B, D (G,) the own-rate slopes, A (G, R) the slopes in each cell's
        log normalisation factor, B (R, G) each cell's efficiency × gene shares of its total.
        J⁻¹ comes from the Woodbury identity with one R × R solve."""
        value, slope, factor_slope, share = terms
        n_cells = len(self.efficiency)
        reached = value.mean(axis=0)
        own = np.maximum((slope * self.efficiency[:, None]).mean(axis=0), 1e-3)  # D, floored: unexpressed genes
        a_over_d = factor_slope.T[free] / n_cells / own[free, None]  # D⁻¹ A (F, R)
        b = self.efficiency[:, None] * share[:, free]  # (R, F)
        first = (target - reached)[free] / own[free]
        inner = np.eye(n_cells) - b @ a_over_d
        step = np.zeros_like(shift)
        step[free] = first + a_over_d @ np.linalg.solve(inner, b @ first)
        return step


def _solve_pair_shift(expect: _Expectation, target: np.ndarray, start: np.ndarray, iterations: int,
                      ceiling: np.ndarray, reach: float = 3.0,
                      tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Log-rate shift L (G,) whose expected mean is ``target``: damped Newton steps from
    ``start``, L kept within ``start ± reach`` (a 20-fold rate change past the singles' sum) and
    below ``ceiling`` (G,). Returns L and the expected mean it reaches: targets out of reach
    (below zero, or beyond what a gene's counts allow) are approached as far as that."""
    high = np.minimum(start + reach, ceiling)
    low = np.minimum(start - reach, high)
    shift = np.clip(start, low, high)
    terms = expect.terms(shift)  # once per shift: the mean reached and the next step's slopes
    reached = terms[0].mean(axis=0)
    for _ in range(iterations):
        gap = target - reached
        # a gene at a bound that still wants past it has gone as far as allowed
        free = ~(((shift <= low) & (gap < 0)) | ((shift >= high) & (gap > 0)))
        if np.abs(gap[free]).max(initial=0.0) < tolerance:
            break
        step = expect.newton_step(terms, shift, target, free)
        shift = np.clip(shift + np.clip(step, -1.0, 1.0), low, high)
        terms = expect.terms(shift)
        reached = terms[0].mean(axis=0)
    return shift, reached


def _pair_residual(direction: np.ndarray, fitted: np.ndarray, corr_fit: float) -> np.ndarray:
    """ρ on the genes where ``direction`` (scored scale) is non-zero, orthogonal to ``fitted``
    on those genes (so ρ stays on them), sized so that r(fitted, fitted + ρ) = ``corr_fit``."""
    norm_fit = np.linalg.norm(fitted)
    support = direction != 0
    fit_on_support = np.where(support, fitted, 0.0)
    unit = direction - (direction @ fit_on_support) / max(fit_on_support @ fit_on_support, 1e-24) * fit_on_support
    if norm_fit == 0 or np.linalg.norm(unit) == 0:
        return np.zeros_like(fitted)
    unit /= np.linalg.norm(unit)
    corr = float(np.clip(corr_fit, 1e-3, 1.0))
    return norm_fit * np.sqrt(1.0 / corr**2 - 1.0) * unit


def expected_condition_means(scaffold: Scaffold, config: SimulatorConfig, parameters: _Parameters,
                             rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Noise-free truth: per condition, the expected mean of log-normalised expression
    (conditions × genes), the log-rate shift its cells get at full efficiency (conditions ×
    genes; pairs: solved), and each pair's residual target corr_fit."""
    genes = scaffold.genes
    gene_index = {g: i for i, g in enumerate(genes)}
    # reference cells: library size × efficiency on a grid of their quantiles (the two
    # largest sources of cell-to-cell spread), program activity drawn per cell
    side = int(np.ceil(np.sqrt(config.expectation_cells)))
    quantiles = (np.arange(side) + 0.5) / side
    log_library, efficiency = np.meshgrid(norm.ppf(quantiles, scale=config.library_log_sd),
                                          beta.ppf(quantiles, config.efficiency_a, config.efficiency_b))
    expect = _Expectation(_baseline_log_rates(parameters, config, gene_index, side**2, rng, log_library.ravel(),
                                              antithetic=True),
                          efficiency.ravel(), ScoredScale.build(config.nb_theta),
                          float(np.log(config.target_sum)))
    conditions = scaffold.conditions.condition.tolist()
    zero = np.zeros(len(genes))
    value, slope, _, _ = expect.terms(zero)
    control = value.mean(axis=0)
    sensitivity = slope.mean(axis=0)  # per gene: how far the scored mean moves per unit log rate
    means, shifts, corr_targets = {CONTROL: control}, {CONTROL: zero}, {}
    # no gene of a perturbed cell may hold more than max_gene_share of a median library: a
    # strong effect on a well-expressed gene (or, in a pair on the log1p scale, two added
    # changes) would otherwise hand it the library and, through normalisation, push every other
    # gene down
    ceiling = np.log(config.max_gene_share * config.depth_umis) - parameters.log_mu
    by_gene: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # a gene written A+ctrl and ctrl+A: once
    for condition in (c for c in conditions if len(condition_genes(c)) == 1):
        (gene,) = condition_genes(condition)
        if gene not in by_gene:
            effect = np.minimum(single_effect(parameters, config, gene_index, gene), ceiling)
            effect = np.minimum(expect.library_preserving(effect, held=gene_index[gene]), ceiling)
            by_gene[gene] = effect, expect.mean(effect)
        shifts[condition], means[condition] = by_gene[gene]
    fitted_median = float(np.median(list(scaffold.combo_corr_fit.values()))) if scaffold.combo_corr_fit else 0.9
    n_residual_genes = max(2, int(round(config.residual_gene_share * len(genes))))
    for condition in [c for c in conditions if len(condition_genes(c)) == 2]:
        a, b = condition_genes(condition)
        c_a, c_b = true_coefficients(scaffold, config, condition)
        singles = np.stack([by_gene[a][1] - control, by_gene[b][1] - control])
        fitted = np.array([c_a, c_b]) @ singles
        corr_targets[condition] = scaffold.combo_corr_fit.get(condition, fitted_median)
        # the departure from additivity: a few genes of a random program mix (on the scored scale)
        direction = _keep_top(parameters.residual_directions[condition] * sensitivity, n_residual_genes)
        residual = _pair_residual(direction, fitted, corr_targets[condition])
        target = np.maximum(control + fitted + residual, 0.0)
        # a pair's library is not free: its target on the scored scale fixes every gene's rate,
        # and so the total (pairs' mean UMIs per cell: 0.33–2.91× control's, Norman 0.5–1.6×)
        start = c_a * by_gene[a][0] + c_b * by_gene[b][0]
        shifts[condition], means[condition] = _solve_pair_shift(
            expect, target, start, config.pair_solver_iterations, ceiling)
    order = [c for c in conditions if c in means]
    return (pd.DataFrame.from_dict(means, orient="index", columns=genes).loc[order],
            pd.DataFrame.from_dict(shifts, orient="index", columns=genes).loc[order],
            pd.Series(corr_targets, name="corr_fit_target"))


def simulate_perturb_seq(scaffold: Scaffold, config: SimulatorConfig = SimulatorConfig(),
                         max_cells_per_condition: int | None = None,
                         max_control_cells: int | None = None,
                         progress: bool = True) -> tuple[ad.AnnData, ad.AnnData]:
    """Simulate a Perturb-seq screen on ``scaffold``.

    Returns ``(adata, truth)``: ``adata`` in GEARS format (``obs['condition']``,
    ``obs['cell_type']``, ``var['gene_name']``, log-normalised sparse ``X``; ``obs`` also holds
    each cell's ``total_counts`` and ``n_genes_by_counts``), and ``truth`` with one row per
    condition: ``X`` the noise-free expected mean of log-normalised expression,
    ``layers['log_rate_shift']`` the log-rate change at full efficiency, ``obs`` the
    coefficients and labels the simulator used.
    """
    param_seed, cell_seed, reference_seed = np.random.SeedSequence(config.seed).spawn(3)
    parameters = _draw_parameters(scaffold, config, np.random.default_rng(param_seed))
    expected, shifts, corr_targets = expected_condition_means(scaffold, config, parameters,
                                                              np.random.default_rng(reference_seed))
    rng = np.random.default_rng(cell_seed)
    gene_index = {g: i for i, g in enumerate(scaffold.genes)}

    counts_blocks, conditions_per_cell = [], []
    rows = list(scaffold.conditions.itertuples(index=False))
    for condition, n_real in progress_bar(rows, progress, desc="simulating conditions"):
        cap = max_control_cells if condition == CONTROL else max_cells_per_condition
        n = int(n_real if cap is None else min(n_real, cap))
        log_rate = _baseline_log_rates(parameters, config, gene_index, n, rng)
        if condition != CONTROL:  # singles: one guide; pairs: one effective activation of the pair
            efficiency = rng.beta(config.efficiency_a, config.efficiency_b, (n, 1))
            log_rate += efficiency * shifts.loc[condition].to_numpy()[None, :]
        rate = np.exp(log_rate)
        counts = rng.poisson(rng.gamma(config.nb_theta, rate / config.nb_theta))
        counts_blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        conditions_per_cell.extend([condition] * n)

    counts = sp.vstack(counts_blocks, format="csr")
    totals = np.asarray(counts.sum(axis=1)).ravel()
    normalised = sp.diags((config.target_sum / np.maximum(totals, 1)).astype(np.float32)) @ counts
    normalised.data = np.log1p(normalised.data)
    obs = pd.DataFrame({"condition": pd.Categorical(conditions_per_cell),
                        "cell_type": config.cell_type,
                        "total_counts": totals.astype(np.float32),
                        "n_genes_by_counts": np.diff(counts.indptr).astype(np.int32)},
                       index=[f"sim{i:06d}" for i in range(len(conditions_per_cell))])
    var = pd.DataFrame({"gene_name": scaffold.genes}, index=pd.Index(scaffold.genes, name=None))
    adata = ad.AnnData(X=normalised.astype(np.float32).tocsr(), obs=obs, var=var)
    adata.uns["simulator"] = {"config": asdict(config), "source": "Norman-scaffold simulator"}

    truth_obs = pd.DataFrame(index=expected.index)
    truth_obs["n_genes_perturbed"] = [len(condition_genes(c)) for c in expected.index]
    first_coef = [true_coefficients(scaffold, config, c)[0] for c in expected.index]
    second_coef = [true_coefficients(scaffold, config, c)[1] for c in expected.index]
    truth_obs["c_a"], truth_obs["c_b"] = first_coef, second_coef
    truth_obs["corr_fit_target"] = corr_targets.reindex(expected.index).to_numpy()
    truth_obs["norman_fit"] = [c in scaffold.combo_corr_fit for c in expected.index]
    truth_obs["neomorphic"] = [c in scaffold.neomorphic for c in expected.index]
    strengths = [[parameters.strength[g] for g in condition_genes(c)] for c in expected.index]
    truth_obs["effect_strength"] = [float(np.mean(s)) if s else 0.0 for s in strengths]
    truth = ad.AnnData(X=expected.to_numpy(np.float32), obs=truth_obs,
                       var=pd.DataFrame({"log_mean": parameters.log_mu}, index=scaffold.genes),
                       layers={"log_rate_shift": shifts.to_numpy(np.float32)})
    truth.uns["mean_efficiency"] = config.mean_efficiency
    truth.uns["config"] = asdict(config)
    return adata, truth


def depth_table(adata: ad.AnnData) -> pd.DataFrame:
    """Counts per cell of a simulated dataset beside Norman's (``reference.NORMAN_COUNTS_LAYER``):
    one row per measure, columns ``norman`` (5,045 genes), ``norman_scaled`` (on this panel: GEARS'
    high-mean genes carry nearly all of Norman's counts and detected genes, so depth and detected
    genes per cell stay and the non-zero share grows) and ``simulated``. Needs the simulator's
    ``obs['total_counts']`` and ``obs['n_genes_by_counts']``."""
    from helpers.reference import NORMAN_COUNTS_LAYER as norman

    missing = {"total_counts", "n_genes_by_counts"} - set(adata.obs)
    if missing:
        raise ValueError(f"obs lacks {sorted(missing)}: depth is known for simulated data only")
    totals, detected = adata.obs["total_counts"].to_numpy(), adata.obs["n_genes_by_counts"].to_numpy()
    rows = [("genes", norman["genes"], adata.n_vars, adata.n_vars),
            ("median UMIs per cell", norman["median_umis_per_cell"], norman["median_umis_per_cell"], np.median(totals)),
            ("min UMIs per cell", norman["min_umis_per_cell"], norman["min_umis_per_cell"], totals.min()),
            ("max UMIs per cell", norman["max_umis_per_cell"], norman["max_umis_per_cell"], totals.max()),
            ("median detected genes per cell", norman["median_detected_genes_per_cell"],
             norman["median_detected_genes_per_cell"], np.median(detected)),
            ("non-zero share of the matrix", norman["nonzero_share"],
             norman["median_detected_genes_per_cell"] / adata.n_vars, detected.sum() / (adata.n_obs * adata.n_vars))]
    return pd.DataFrame(rows, columns=["measure", "norman", "norman_scaled", "simulated"]).set_index("measure")


# The simulator's settings that decide which kind of gene prior has signal on the default data.
PRIOR_SIGNAL_KNOBS = {
    "go_weight": "single effects smoothed over GO neighbours: how much GO annotation predicts an effect",
    "go_neighbours": "GO neighbours each perturbed gene's effect is smoothed over",
    "cluster_weight": "effects shared within Norman's GI clusters",
    "private_weight": "each gene's own, unshared part of its effect",
    "shared_axis_share": "share of each effect on the axes most perturbations move along",
    "manifold_weight": "how far an effect follows the gene's place on Norman's GI map (his singles' similarity, which itself follows GO)",
    "shuffle_manifold": "places on the map dealt out at random: singles as alike as Norman's, but not the same genes alike",
    "coexpression_strength": "how much a regulator's own expression follows the programs it drives",
}


def simulator_config(seed: int, settings: Mapping[str, Any] | None = None):
    """The simulator's configuration: its defaults with ``seed`` and ``settings`` (names of
    ``SimulatorConfig`` fields) changed. An unknown name is an error that lists the known ones."""
    from dataclasses import fields, replace

    settings = dict(settings or {})
    known = {f.name for f in fields(SimulatorConfig)} - {"seed"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown simulator setting(s) {unknown}; SimulatorConfig defines {sorted(known)}")
    return replace(SimulatorConfig(seed=seed), **settings)


def simulator_fingerprint(seed: int, settings: Mapping[str, Any] | None = None) -> dict:
    """What makes the simulated data besides the profile and the code (the data step's cache
    key holds ``runs.code_digest`` of this module, which imports the simulator): the
    simulator's settings."""
    from dataclasses import asdict

    return {"config": asdict(simulator_config(seed, settings))}
