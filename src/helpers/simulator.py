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
    single p      d[p] = m[p] · W                  downstream effect, m[p] a sparse program mix:
                  m[p] ∝ s[p] · top_n(cluster signature + GO-smoothed draw + private draw)
                  so genes with similar GO annotation or the same Norman cluster act alike
    cell in A+ctrl  log λ += e_A · (d[A] + a · 1[g = A])          a = target_activation_lfc
    cell in A+B     log λ += e_A · (c_A d[A] + a 1[g = A]) + e_B · (c_B d[B] + a 1[g = B])
                             + √(e_A e_B) · r[A+B]
                  c_A, c_B: Norman's Theil–Sen coefficients (1, 1 where Norman has no fit)
                  r[A+B] = residual_scale · (s_A + s_B)/2 · (random sparse program mix) · W,
                  with the larger scale for combinations GEARS labels NEOMORPHIC
                  e ~ Beta(efficiency_a, efficiency_b): per-cell CRISPRa efficiency per guide
    counts        y[c, g] ~ NegativeBinomial(mean λ[c, g], inverse dispersion nb_theta)
    processing    X = log1p(normalize_total(y, 1e4)), as GEARS' processed Norman

The parameters below were chosen once from the biology and from Norman's data (orders of
magnitude of 10x K562 libraries, CRISPRa target induction, the spread of Norman's fits) and
are never tuned to make a model look better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers import reference
from helpers.conditions import CONTROL, condition_genes, genes_of
from helpers.graphs import go_jaccard_edges
from helpers.runs import progress_bar


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulator parameters (see the module docstring for the model they enter)."""

    seed: int = 0
    # Baseline means, in counts per cell at the median library (10x K562: the high-mean genes
    # carry a few UMIs per cell each; most perturbed regulators are barely detected).
    high_mean_log_mean: float = float(np.log(2.0))
    high_mean_log_sd: float = 1.0
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
    # Single perturbations
    programs_per_gene: int = 3
    effect_strength_log_mean: float = float(np.log(1.2))
    effect_strength_log_sd: float = 0.7  # some CRISPRa targets barely act, a few act strongly
    cluster_weight: float = 1.0
    go_weight: float = 1.0
    private_weight: float = 0.7
    go_neighbours: int = 10
    target_activation_lfc: float = 4.0  # ~55-fold at full efficiency (CRISPRa: 10- to 1000-fold)
    # Combinations
    residual_scale: float = 0.2
    neomorphic_residual_scale: float = 0.8
    # Cells
    efficiency_a: float = 4.0  # Beta(4, 2): mean efficiency 0.67, some cells barely activated
    efficiency_b: float = 2.0
    target_sum: float = 1e4
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
    neomorphic: frozenset[str] = frozenset()
    clusters: Mapping[str, int] = field(default_factory=dict)  # gene → cluster (-1 = none)
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
    neomorphic_sets = {_order_free(c) for c in reference.gi_types()["NEOMORPHIC"]}
    neomorphic = frozenset(c for c in coefficients if _order_free(c) in neomorphic_sets)
    clusters = dict(zip(*reference.single_clusters()[["gene", "cluster"]].values.T))
    return Scaffold(conditions=conditions[["condition", "n_cells"]], genes=genes,
                    combo_coefficients=coefficients, neomorphic=neomorphic,
                    clusters={g: int(clusters.get(g, -1)) for g in perturbed},
                    gene2go=reference.gene2go())


def _sparse_mix(rng: np.random.Generator, n_programs: int, n_active: int) -> np.ndarray:
    mix = np.zeros(n_programs)
    mix[rng.choice(n_programs, n_active, replace=False)] = rng.normal(size=n_active)
    return mix


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
    residuals: dict[str, np.ndarray]  # combo → (genes,) r[A+B]


def _draw_parameters(scaffold: Scaffold, config: SimulatorConfig,
                     rng: np.random.Generator) -> _Parameters:
    genes, perturbed = scaffold.genes, scaffold.perturbed_genes
    n_genes, k = len(genes), config.n_programs
    high_mean = set(reference.high_mean_genes())
    log_mu = np.where([g in high_mean or g not in perturbed for g in genes],
                      rng.normal(config.high_mean_log_mean, config.high_mean_log_sd, n_genes),
                      rng.normal(config.regulator_log_mean, config.regulator_log_sd, n_genes))

    programs = np.zeros((k, n_genes))
    n_moved = max(2, int(round(config.program_density * n_genes)))
    for row in programs:
        moved = rng.choice(n_genes, n_moved, replace=False)
        row[moved] = rng.normal(0.0, config.program_loading_sd, n_moved)

    # Each Norman GI-manifold cluster shares a program signature; GO neighbours share draws.
    cluster_ids = sorted({c for c in scaffold.clusters.values() if c >= 0})
    signatures = {c: _sparse_mix(rng, k, 2) for c in cluster_ids}
    private = {g: _sparse_mix(rng, k, 2) for g in perturbed}
    edges = go_jaccard_edges(scaffold.gene2go, perturbed, threshold=0.0)
    edges = edges[edges.source != edges.target]
    go_smoothed = {g: np.zeros(k) for g in perturbed}
    for target, group in edges.groupby("target"):
        top = group.nlargest(config.go_neighbours, "importance")
        weights = top.importance.to_numpy() / top.importance.sum()
        go_smoothed[target] = sum(w * private[s] for w, s in zip(weights, top.source))
    strength = {g: float(np.exp(rng.normal(config.effect_strength_log_mean,
                                           config.effect_strength_log_sd))) for g in perturbed}
    mixes = {}
    for g in perturbed:
        cluster = scaffold.clusters.get(g, -1)
        raw = (config.cluster_weight * signatures.get(cluster, np.zeros(k))
               + config.go_weight * go_smoothed[g] + config.private_weight * private[g])
        raw = _keep_top(raw, config.programs_per_gene)
        mixes[g] = strength[g] * raw / max(np.linalg.norm(raw), 1e-12)
    downstream = {g: mixes[g] @ programs for g in perturbed}

    residuals = {}
    for combo in scaffold.combo_coefficients:
        a, b = condition_genes(combo)
        scale = (config.neomorphic_residual_scale if combo in scaffold.neomorphic
                 else config.residual_scale)
        mix = _sparse_mix(rng, k, config.programs_per_gene)
        mix /= max(np.linalg.norm(mix), 1e-12)
        residuals[combo] = scale * 0.5 * (strength[a] + strength[b]) * (mix @ programs)
    return _Parameters(log_mu, programs, mixes, strength, downstream, residuals)


def true_log_fold_changes(scaffold: Scaffold, config: SimulatorConfig,
                          parameters: _Parameters) -> pd.DataFrame:
    """Per-condition log-rate change at full activation efficiency (conditions × genes)."""
    gene_index = {g: i for i, g in enumerate(scaffold.genes)}
    rows = {}
    for condition in scaffold.conditions.condition:
        lfc = np.zeros(len(scaffold.genes))
        genes = condition_genes(condition)
        coefs = scaffold.combo_coefficients.get(condition, (1.0, 1.0))
        for gene, coef in zip(genes, coefs):
            lfc += coef * parameters.downstream[gene]
            lfc[gene_index[gene]] += config.target_activation_lfc
        if len(genes) == 2:
            lfc += parameters.residuals[condition]
        rows[condition] = lfc
    return pd.DataFrame.from_dict(rows, orient="index", columns=scaffold.genes)


def simulate_perturb_seq(scaffold: Scaffold, config: SimulatorConfig = SimulatorConfig(),
                         max_cells_per_condition: int | None = None,
                         max_control_cells: int | None = None,
                         progress: bool = True) -> tuple[ad.AnnData, ad.AnnData]:
    """Simulate a Perturb-seq screen on ``scaffold``.

    Returns ``(adata, truth)``: ``adata`` in GEARS format (``obs['condition']``,
    ``obs['cell_type']``, ``var['gene_name']``, log-normalised sparse ``X``), and ``truth``
    with one row per condition: ``X`` the true log-fold changes at full efficiency, ``obs`` the
    coefficients and labels the simulator used.
    """
    param_seed, cell_seed = np.random.SeedSequence(config.seed).spawn(2)
    parameters = _draw_parameters(scaffold, config, np.random.default_rng(param_seed))
    rng = np.random.default_rng(cell_seed)
    lfc = true_log_fold_changes(scaffold, config, parameters)
    gene_index = {g: i for i, g in enumerate(scaffold.genes)}

    counts_blocks, conditions_per_cell = [], []
    rows = list(scaffold.conditions.itertuples(index=False))
    for condition, n_real in progress_bar(rows, progress, desc="simulating conditions"):
        cap = max_control_cells if condition == CONTROL else max_cells_per_condition
        n = int(n_real if cap is None else min(n_real, cap))
        z = rng.normal(0.0, config.natural_program_sd, (n, config.n_programs))
        log_rate = (parameters.log_mu[None, :] + rng.normal(0.0, config.library_log_sd, (n, 1))
                    + z @ parameters.programs)
        for gene, mix in parameters.mixes.items():  # regulators follow the program they drive
            if gene in gene_index:
                unit = mix / max(np.linalg.norm(mix), 1e-12)
                log_rate[:, gene_index[gene]] += config.coexpression_strength * (z @ unit)
        genes = condition_genes(condition)
        coefs = scaffold.combo_coefficients.get(condition, (1.0, 1.0))
        efficiencies = rng.beta(config.efficiency_a, config.efficiency_b, (n, len(genes)))
        for j, (gene, coef) in enumerate(zip(genes, coefs)):
            effect = coef * parameters.downstream[gene]
            effect[gene_index[gene]] += config.target_activation_lfc
            log_rate += efficiencies[:, [j]] * effect[None, :]
        if len(genes) == 2:
            log_rate += np.sqrt(efficiencies.prod(axis=1))[:, None] * parameters.residuals[condition][None, :]
        rate = np.exp(log_rate)
        counts = rng.poisson(rng.gamma(config.nb_theta, rate / config.nb_theta))
        counts_blocks.append(sp.csr_matrix(counts.astype(np.float32)))
        conditions_per_cell.extend([condition] * n)

    counts = sp.vstack(counts_blocks, format="csr")
    totals = np.asarray(counts.sum(axis=1)).ravel()
    normalised = sp.diags((config.target_sum / np.maximum(totals, 1)).astype(np.float32)) @ counts
    normalised.data = np.log1p(normalised.data)
    obs = pd.DataFrame({"condition": pd.Categorical(conditions_per_cell),
                        "cell_type": config.cell_type},
                       index=[f"sim{i:06d}" for i in range(len(conditions_per_cell))])
    var = pd.DataFrame({"gene_name": scaffold.genes}, index=pd.Index(scaffold.genes, name=None))
    adata = ad.AnnData(X=normalised.astype(np.float32).tocsr(), obs=obs, var=var)
    adata.uns["simulator"] = {"config": asdict(config), "source": "Norman-scaffold simulator"}

    truth_obs = pd.DataFrame(index=lfc.index)
    truth_obs["n_genes_perturbed"] = [len(condition_genes(c)) for c in lfc.index]
    first_coef = [scaffold.combo_coefficients.get(c, (1.0, 1.0))[0] for c in lfc.index]
    second_coef = [scaffold.combo_coefficients.get(c, (1.0, 1.0))[1] for c in lfc.index]
    truth_obs["c_a"], truth_obs["c_b"] = first_coef, second_coef
    truth_obs["neomorphic"] = [c in scaffold.neomorphic for c in lfc.index]
    strengths = [[parameters.strength[g] for g in condition_genes(c)] for c in lfc.index]
    truth_obs["effect_strength"] = [float(np.mean(s)) if s else 0.0 for s in strengths]
    truth = ad.AnnData(X=lfc.to_numpy(np.float32), obs=truth_obs,
                       var=pd.DataFrame({"log_mean": parameters.log_mu}, index=scaffold.genes))
    truth.uns["mean_efficiency"] = config.mean_efficiency
    truth.uns["config"] = asdict(config)
    return adata, truth
