"""Fixed gene embeddings ("priors") for GEARS: from GO annotations or from a file.

A prior is a table gene symbol → vector. It enters the dense GEARS engine through a trainable
projection beside GEARS' own trainable embedding (as scELMo plugged language-model embeddings
into GEARS); genes the table lacks get zeros and are counted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.reference import REPO_ROOT

PRIOR_TARGETS = ("gene", "perturbation", "both")
# the evidence for where priors enter, decided once on several seeds (benchmarks/prior_target.py)
TARGET_BENCHMARK = REPO_ROOT / "benchmarks" / "prior_target_selection.csv"


class EmbeddingFileError(ValueError):
    """An embedding table that cannot be used; the message names the file and the fix."""


def go_svd_embeddings(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                      n_components: int = 64, seed: int = 0) -> pd.DataFrame:
    """Truncated SVD of the binary gene × GO-term matrix (rows L2-normalised first), for the
    ``genes`` with annotation: genes sharing GO terms get nearby vectors. No pretraining."""
    from sklearn.decomposition import TruncatedSVD

    annotated = [g for g in dict.fromkeys(genes) if gene2go.get(g)]
    terms = sorted({t for g in annotated for t in gene2go[g]})
    index = {t: i for i, t in enumerate(terms)}
    rows = [i for i, g in enumerate(annotated) for _ in gene2go[g]]
    cols = [index[t] for g in annotated for t in gene2go[g]]
    membership = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(annotated), len(terms)))
    norms = np.sqrt(np.asarray(membership.sum(axis=1))).ravel()
    membership = sp.diags(1 / norms) @ membership
    k = min(n_components, min(membership.shape) - 1)
    vectors = TruncatedSVD(n_components=k, random_state=seed).fit_transform(membership)
    return pd.DataFrame(vectors, index=annotated, columns=[f"go_svd_{i}" for i in range(k)])


def read_embedding_table(path: Path | str) -> pd.DataFrame:
    """Read a gene-embedding table: CSV/TSV (first column the gene symbol), Parquet (index or
    first column the symbol) or NPZ (arrays ``genes`` and ``embeddings``)."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingFileError(f"{path}: file not found. What to do: pass the path of a CSV, TSV, "
                                 "Parquet or NPZ table of gene symbol → vector")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt"):
        table = pd.read_csv(path, sep="\t" if ".tsv" in suffix or suffix == ".txt" else ",", index_col=0)
    elif suffix == ".parquet":
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.RangeIndex):  # symbols stored as the first column
            table = table.set_index(table.columns[0])
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if not {"genes", "embeddings"} <= set(archive.files):
                raise EmbeddingFileError(f"{path}: NPZ needs arrays 'genes' and 'embeddings', found "
                                         f"{archive.files}. What to do: np.savez(path, genes=..., embeddings=...)")
            table = pd.DataFrame(archive["embeddings"], index=archive["genes"].astype(str))
    else:
        raise EmbeddingFileError(f"{path}: unknown format {suffix!r}. What to do: use .csv, .tsv, "
                                 ".parquet or .npz")
    table.index = table.index.astype(str)
    duplicated = table.index[table.index.duplicated()].unique().tolist()
    if duplicated:
        raise EmbeddingFileError(f"{path}: {len(duplicated)} gene(s) appear more than once "
                                 f"({', '.join(duplicated[:5])}). What to do: keep one row per gene")
    try:
        table = table.astype(np.float32)
    except (TypeError, ValueError) as error:
        raise EmbeddingFileError(f"{path}: embedding values must be numbers ({error}). What to do: "
                                 "one row per gene, its symbol first, then only numeric columns") from error
    if not np.isfinite(table.to_numpy()).all():
        raise EmbeddingFileError(f"{path}: contains NaN or infinite values. What to do: drop or fix those rows")
    return table


def match_genes(wanted: Sequence[str], available: Sequence[str], aliases: pd.DataFrame) -> dict[str, str]:
    """For each wanted gene, the name it has in ``available``: the same symbol, else its current
    symbol (when ``wanted`` is an alias), else one of its aliases. ``aliases`` has columns
    ``symbol`` (current) and ``alias_symbol``."""
    have = set(available)
    # symbols of each alias and aliases of each symbol, in the table's order (what a pandas
    # groupby(...).agg(list) gives, in a 50th of the time: chapter 14 matches in every run)
    current_of: dict[str, list[str]] = {}
    aliases_of: dict[str, list[str]] = {}
    for symbol, alias in zip(aliases["symbol"].tolist(), aliases["alias_symbol"].tolist()):
        for key, value, lists in ((alias, symbol, current_of), (symbol, alias, aliases_of)):
            if key is not None and key == key:  # no missing keys (NaN != NaN), as groupby
                lists.setdefault(key, []).append(value)
    matched = {}
    for gene in wanted:
        candidates = [gene, *current_of.get(gene, [])]
        candidates += [a for c in list(candidates) for a in aliases_of.get(c, [])]
        hit = next((c for c in candidates if c in have), None)
        if hit is not None:
            matched[gene] = hit
    return matched


def align_embeddings(table: pd.DataFrame, genes: Sequence[str], aliases: pd.DataFrame,
                     source: str = "embedding table") -> tuple[np.ndarray, pd.DataFrame]:
    """``(matrix (len(genes), D), report)``: the table's vector for each gene (zeros when it has
    none) and, per gene, whether and under which name it was found.

    A table that matches none of ``genes`` is an error naming ``source`` (usually a table keyed
    by another identifier, e.g. Ensembl IDs, or of another species)."""
    matched = match_genes(genes, table.index, aliases)
    if not matched:
        raise EmbeddingFileError(
            f"{source}: none of its {len(table)} genes (first: {', '.join(map(str, table.index[:3]))}) "
            f"matches any of the {len(genes)} dataset genes (first: {', '.join(list(genes)[:3])}), even "
            "through HGNC aliases. What to do: key the table by human gene symbols (map Ensembl IDs to "
            "symbols first)")
    matrix = np.zeros((len(genes), table.shape[1]), dtype=np.float32)
    rows = [i for i, gene in enumerate(genes) if gene in matched]
    matrix[rows] = table.to_numpy()[table.index.get_indexer([matched[genes[i]] for i in rows])]
    report = pd.DataFrame({"gene": list(genes), "matched_as": [matched.get(g) for g in genes]})
    report["found"] = report.matched_as.notna()
    report["via_alias"] = report.found & (report.matched_as != report.gene)
    return matrix, report


def nearest_neighbours(table: pd.DataFrame, queries: Sequence[str], k: int = 5) -> pd.DataFrame:
    """The ``k`` rows of ``table`` most cosine-similar to each query row (``query,rank,gene,cosine``)."""
    vectors = table.to_numpy(dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    rows = []
    for query in queries:
        similarity = unit @ unit[table.index.get_loc(query)]
        order = [i for i in np.argsort(-similarity, kind="stable") if table.index[i] != query][:k]
        rows += [{"query": query, "rank": r + 1, "gene": table.index[i], "cosine": float(similarity[i])}
                 for r, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["query", "rank", "gene", "cosine"])


def neighbour_agreement(table: pd.DataFrame, labels: pd.Series, k: int = 5) -> tuple[float, float, int]:
    """How often a labelled row's ``k`` most cosine-similar labelled rows share its label, beside
    the rate a random choice of neighbours would give (the labels' own frequencies). Returns
    ``(rate, chance, n)``, ``n`` the labelled rows; NaN rates when fewer than two."""
    labelled = [g for g in table.index if g in labels.index and pd.notna(labels[g])]
    if len(labelled) < 2:
        return float("nan"), float("nan"), len(labelled)
    vectors = table.loc[labelled].to_numpy(dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(labelled) - 1)
    neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    own = labels.loc[labelled].to_numpy()
    rate = float((own[neighbours] == own[:, None]).mean())
    counts = pd.Series(own).value_counts().to_numpy()
    chance = float(((counts * (counts - 1)) / (len(own) - 1)).sum() / len(own))  # same label, another row
    return rate, chance, len(labelled)


def choose_prior_target(validation: pd.DataFrame) -> pd.DataFrame:
    """Per prior, the target (``gene``, ``perturbation`` or ``both``) with the lowest validation
    error; ``validation`` has columns ``prior, target, val_mse_top20_de`` (one row per run; seeds
    are averaged). Ties go to the earlier target in :data:`PRIOR_TARGETS`. The test set is never
    looked at. Returns ``prior, target, val_mse_top20_de, chosen`` for every candidate."""
    unknown = sorted(set(validation.target) - set(PRIOR_TARGETS))
    if unknown:
        raise ValueError(f"unknown prior target(s) {unknown}; choose from {PRIOR_TARGETS}")
    mean = (validation.groupby(["prior", "target"], as_index=False).val_mse_top20_de.mean()
            .assign(order=lambda t: t.target.map(PRIOR_TARGETS.index))
            .sort_values(["prior", "val_mse_top20_de", "order"], kind="stable"))
    mean["chosen"] = ~mean.duplicated("prior")
    return mean.drop(columns="order").sort_values(["prior", "target"]).reset_index(drop=True)


def go_categories(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str],
                  term_names: Mapping[str, str], n_categories: int = 8,
                  min_genes: int = 10, max_overlap: float = 0.2) -> pd.Series:
    """A colour label per gene from its GO annotation, chosen from the data, not by hand: the
    ``n_categories`` terms that annotate most of ``genes`` while no bigger chosen term already
    shares more than ``max_overlap`` of their genes (so near-synonymous terms are not both
    picked); each gene is labelled with the smallest chosen term it carries, ``'other'`` when it
    carries none."""
    members: dict[str, set[str]] = {}
    for gene in genes:
        for term in gene2go.get(gene, ()):
            if term in term_names:
                members.setdefault(term, set()).add(gene)
    chosen: list[str] = []
    for term in sorted(members, key=lambda t: (-len(members[t]), t)):
        if len(chosen) == n_categories or len(members[term]) < min_genes:
            break
        if all(len(members[term] & members[c]) <= max_overlap * len(members[term]) for c in chosen):
            chosen.append(term)
    labels = {}
    for gene in genes:
        carried = [t for t in chosen if gene in members[t]]
        labels[gene] = term_names[min(carried, key=lambda t: len(members[t]))] if carried else "other"
    return pd.Series(labels, name="go_category")


def leading_component_correlation(table: pd.DataFrame, values: pd.Series) -> float:
    """|Spearman ρ| between the rows' scores on the table's first principal component and
    ``values`` (per gene, e.g. mean expression); the sign of a principal component is arbitrary."""
    from scipy.stats import spearmanr

    vectors = table.to_numpy(dtype=np.float64)
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return float(abs(spearmanr(u[:, 0] * s[0], values.reindex(table.index).to_numpy()).statistic))


@dataclass(frozen=True)
class AlignedPriors:
    """Every prior aligned to one gene axis (:func:`align_priors`)."""

    tables: dict[str, pd.DataFrame]  # prior → genes × dimensions (zeros where it has no vector)
    coverage: pd.DataFrame  # per prior and gene: gene, matched_as, found, via_alias, prior, perturbed

    @property
    def summary(self) -> pd.DataFrame:
        """Per prior: the genes, how many it has a vector for (directly or through an alias) and
        how many of the perturbed genes."""
        coverage = self.coverage
        return coverage.groupby("prior").agg(
            genes=("gene", "size"), found=("found", "sum"), found_via_alias=("via_alias", "sum"),
            perturbed_found=("perturbed", lambda p: int((p & coverage.loc[p.index, "found"]).sum())))


def align_priors(tables: Mapping[str, pd.DataFrame], genes: Sequence[str], aliases: pd.DataFrame,
                 perturbed: Sequence[str], sources: Mapping[str, str] | None = None) -> AlignedPriors:
    """Each prior table (symbols × dimensions) aligned to ``genes`` (:func:`align_embeddings`;
    columns named as strings), with the coverage of every prior beside whether each gene is
    ``perturbed``. A table that matches no gene is an error naming its ``sources`` entry (the
    prior's name when it has none); every table is checked before any result is returned."""
    sources = sources or {}
    aligned, coverage = {}, []
    for name, table in tables.items():
        matrix, report = align_embeddings(table, genes, aliases, source=sources.get(name, name))
        aligned[name] = pd.DataFrame(matrix, index=list(genes), columns=[str(c) for c in table.columns])
        coverage.append(report.assign(prior=name, perturbed=report.gene.isin(list(perturbed))))
    return AlignedPriors(aligned, pd.concat(coverage, ignore_index=True))


def go_coverage_sentence(gene2go: Mapping[str, frozenset[str] | set[str]], genes: Sequence[str]) -> str:
    """How many of the data's ``genes`` have a GO annotation (and so a GO-SVD vector and a place
    in the GO graph), in one sentence."""
    covered = sum(bool(gene2go.get(g)) for g in genes)
    return (f"{covered:,} of the data's {len(genes):,} genes ({covered / len(genes):.0%}) have a GO "
            f"annotation in the shipped org.Hs.eg.db table ({len(gene2go):,} annotated human genes); "
            "the others (e.g. mitochondrial genes, lncRNA clone names) get no GO-SVD vector and no "
            "place in the GO graph.")


def known_genes(table: pd.DataFrame, genes: Sequence[str]) -> list[str]:
    """The ``genes`` (in their order) that have a non-zero vector in ``table``."""
    return [g for g in genes if g in table.index and np.abs(table.loc[g]).sum() > 0]


def go_structure(table: pd.DataFrame, expression: pd.Series, categories: pd.Series,
                 k: int = 5) -> dict[str, float | int]:
    """What a prior's vectors (``table``, genes × dimensions) follow: ``pc1_expression_rho``
    (:func:`leading_component_correlation` with each gene's mean ``expression``) and how often
    a gene's ``k`` nearest neighbours share its GO category (:func:`go_categories`, ``'other'``
    left out) beside chance (:func:`neighbour_agreement`): ``go_neighbours_same_process``,
    ``go_chance``, ``go_genes``."""
    rate, chance, n = neighbour_agreement(table, categories[categories != "other"], k=k)
    return {"pc1_expression_rho": leading_component_correlation(table, expression),
            "go_neighbours_same_process": rate, "go_chance": chance, "go_genes": n}


def cluster_structure(table: pd.DataFrame, clusters: pd.Series, queries: Sequence[str], prior: str,
                      k: int = 5) -> tuple[pd.DataFrame, dict[str, float | int]]:
    """For perturbed genes' vectors (``table``) and their GI-map ``clusters`` (gene → cluster
    number, negative: unclustered): the ``k`` nearest neighbours of each of the ``queries`` the
    table holds (:func:`nearest_neighbours`, with ``prior`` and both genes' clusters), and how
    often a clustered gene's ``k`` nearest clustered genes share its cluster beside chance:
    ``cluster_neighbours_same``, ``cluster_chance``, ``clustered_genes``."""
    neighbours = nearest_neighbours(table, [g for g in queries if g in table.index], k=k)
    neighbours = neighbours.assign(prior=prior, query_cluster=neighbours["query"].map(clusters),
                                   neighbour_cluster=neighbours.gene.map(clusters))
    rate, chance, n = neighbour_agreement(table, cluster_labels(clusters), k=k)
    return neighbours, {"cluster_neighbours_same": rate, "cluster_chance": chance, "clustered_genes": n}


def cluster_labels(clusters: pd.Series) -> pd.Series:
    """``'cluster <n>'`` for each clustered gene (a cluster number ≥ 0); unclustered genes left out."""
    return clusters[clusters >= 0].map(lambda c: f"cluster {c}")


@dataclass(frozen=True)
class PriorSet:
    """The priors a GEARS + prior chapter trains (:func:`load_priors`)."""

    names: list[str]  # the priors trained on every seed
    selector: str  # the prior the candidate targets are compared with
    tables: dict[str, pd.DataFrame]  # names and selector → symbols × dimensions
    digests: dict[str, str]  # the same → SHA-256 of its file (part of a run's cache key)


def load_priors(folder: Path, names: Sequence[str] | None, targets: Sequence[str] | None,
                selection_prior: str) -> PriorSet:
    """The priors of ``folder`` (``<name>.parquet``, written by the embeddings chapter) that a
    chapter asked for (``names``; ``None``: all), checked with the candidate ``targets`` (a
    non-empty list drawn from :data:`PRIOR_TARGETS`, or None: where :data:`TARGET_BENCHMARK`
    chose). The ``selection_prior`` compares the targets when it was built (it need not be among
    ``names``), else the first of ``names``."""
    unknown = sorted(set(targets or ()) - set(PRIOR_TARGETS))
    if unknown or (targets is not None and not targets):
        raise ValueError(f"prior_targets must be a non-empty list drawn from {PRIOR_TARGETS}, "
                         f"got {targets!r}")
    available = sorted(p.stem for p in Path(folder).glob("*.parquet"))
    names = available if names is None else list(names)
    missing = sorted(set(names) - set(available))
    if missing:
        raise FileNotFoundError(f"no embeddings for {missing} in {folder}; built: {available}. "
                                "Run notebooks/13_gene_embeddings.py (with embedding_file for 'file')")
    selector = selection_prior if selection_prior in available else names[0]
    used = list(dict.fromkeys([*names, selector]))
    files = {name: Path(folder) / f"{name}.parquet" for name in used}
    return PriorSet(names, selector, {n: pd.read_parquet(f) for n, f in files.items()},
                    {n: hashlib.sha256(f.read_bytes()).hexdigest() for n, f in files.items()})


def prior_coverage(table: pd.DataFrame, genes: Sequence[str], graph_nodes: Sequence[str],
                   aliases: pd.DataFrame) -> dict[str, int]:
    """How many of GEARS' ``genes`` and GO-graph nodes (``graph_nodes``) a prior gives a
    non-zero vector (matched through ``aliases``, as :func:`align_embeddings` matches them)."""
    found = table.abs().sum(axis=1) > 0
    counts = {}
    for what, wanted in (("genes", genes), ("graph_nodes", graph_nodes)):
        report = align_embeddings(table, wanted, aliases)[1]
        counts[f"{what}_with_vector"] = int(found.reindex(report.matched_as.dropna()).sum())
        counts[what] = len(wanted)
    return counts


def benchmarked_targets(path: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """The evidence for where priors enter (``benchmarks/prior_target.py``'s table and its
    ``.json``: profile, seeds, data fingerprint, commit), checked; ``path`` defaults to
    :data:`TARGET_BENCHMARK`."""
    path = TARGET_BENCHMARK if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `python benchmarks/prior_target.py`, or "
                                "give chapter 14 prior_targets (e.g. ['gene', 'perturbation', 'both'])")
    table = pd.read_csv(path)
    missing = sorted({"prior", "target", "seed", "val_mse_top20_de", "chosen", "converged"} - set(table))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; rerun benchmarks/prior_target.py")
    choose_prior_target(table)  # unknown targets fail here, naming them
    return table, json.loads(path.with_suffix(".json").read_text())


def target_selection(histories: pd.DataFrame, seed: int) -> pd.DataFrame:
    """:func:`choose_prior_target` on the learning curves of the candidate runs (``prior,
    target, val_mse_top20_de`` per validation): each run's best validation error (the state
    GEARS keeps), with the ``seed`` they trained with."""
    best = histories.groupby(["prior", "target"], as_index=False).val_mse_top20_de.min()
    return choose_prior_target(best).assign(seed=seed)


def prior_structure(aligned: AlignedPriors, genes: Sequence[str], perturbed: Sequence[str],
                    expression: pd.Series, categories: pd.Series, clusters: pd.Series,
                    queries: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per prior, what its vectors follow (:func:`go_structure` over the data's ``genes`` it
    knows, :func:`cluster_structure` over the ``perturbed`` genes it knows): one row per prior
    (``structure.csv``), and the nearest neighbours of each of ``queries`` (``neighbours.csv``)."""
    rows, neighbours = [], []
    for name, table in aligned.tables.items():
        row = {"prior": name, **go_structure(table.loc[known_genes(table, genes)], expression, categories)}
        near, agreement = cluster_structure(table.loc[known_genes(table, perturbed)], clusters, queries, name)
        rows.append(row | agreement)
        neighbours.append(near)
    return pd.DataFrame(rows), pd.concat(neighbours, ignore_index=True)


def remove_stale(folder: Path, names: Sequence[str]) -> None:
    """Delete the tables of priors not given now: a prior given last time must not be trained on."""
    for stale in Path(folder).glob("*.parquet"):
        if stale.stem not in names:
            stale.unlink()


def embedding_parameters(data_run: str, go_svd_components: int, neighbour_genes: Sequence[str],
                         given: Mapping[str, Path | str | None], id_to_symbol: Path | str | None) -> dict:
    """Chapter 13's cache key: its parameters, the prepared data, the GeneMamba run whose
    checkpoint it reads, a digest of every file it reads (the checkpoint included: a file damaged
    or replaced under the same name is read again) and the code that builds and reads the priors."""
    from helpers import pipeline, runs
    from helpers.download import file_digest

    def digest(path: Path | str | None) -> str | None:
        if path is None:
            return None
        path = Path(path)
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        return "".join(file_digest(f)[:16] for f in found if f.is_file())

    return {"data_run": data_run, "go_svd_components": go_svd_components,
            "neighbour_genes": list(neighbour_genes),
            "genemamba_run": (runs.parameters_fingerprint(pipeline.PRETRAIN_GENEMAMBA)
                              if given.get("genemamba") is not None else None),
            **{f"{name}_path": None if path is None else str(path) for name, path in given.items() if name != "genemamba"},
            # every file read, by content: a checkpoint damaged or replaced in place is read again
            "files": {name: digest(path) for name, path in given.items()},
            "id_to_symbol": digest(id_to_symbol),
            "code": runs.code_digest("helpers.models.priors", "helpers.models.genemamba")}
