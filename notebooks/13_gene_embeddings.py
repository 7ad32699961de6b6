# %% [markdown]
# # Gene embeddings as priors for GEARS
#
# In this notebook we build fixed gene embeddings ("priors") that GEARS can use beside its own
# learned ones, and look at what they know: which genes they cover and whether genes that act
# alike in the screen sit close together.
#
# - `genemamba`: the token embedding table of the GeneMamba pretrained in the previous chapter
#   (one vector per gene of the expression matrix).
# - `go_svd`: a truncated SVD of the gene × GO-term matrix of the shipped annotations. It needs
#   no pretraining and encodes exactly the GO knowledge GEARS' perturbation graph already uses,
#   so it is the control prior: an embedding that adds no new information.
# - `file`: any table gene symbol → vector (CSV, TSV, Parquet or NPZ; e.g. GenePT or scELMo
#   embeddings), given by path. Symbols are matched through org.Hs.eg.db aliases and the
#   coverage is reported.
# - `genemamba_published`: the token embeddings of the published GeneMamba (Qi et al. 2025), when
#   its checkpoint folder from the Hugging Face hub is given by path (`published_genemamba`; the
#   hub cannot be reached from the machine that builds this book).

# %% tags=["parameters"]
# 'quick', 'default', 'norman_cpu' or 'full' (same data as the data chapter)
profile = "default"
go_svd_components = 64  # dimensions of the GO-SVD embedding
# optional path to a gene-embedding table (CSV, TSV, Parquet or NPZ)
embedding_file = None
# optional folder of a published GeneMamba (model.safetensors + tokenizer.json)
published_genemamba = None
# its Ensembl ID → symbol table (CSV/TSV, or GeneMamba's id2symbol.pkl)
published_id_to_symbol = None
# perturbed genes whose nearest neighbours we list
neighbour_genes = ["KLF1", "CEBPE", "ETS2"]
force = False  # rebuild even if embeddings for these parameters exist

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from helpers import data, files, pipeline, plots, profiles, reference, roots, runs
from helpers.conditions import genes_of
from helpers.models import genemamba, priors
from helpers.summary import embedding_findings

STEP = pipeline.GENE_EMBEDDINGS
profiles.get_profile(profile)
prepared = data.load_prepared()
out = roots.step_dir(STEP)
adata = prepared.adata
dataset_genes = adata.var["gene_name"].astype(str).tolist()
perturbed = genes_of(adata.obs["condition"].astype(str).unique())
vocabulary_needed = sorted(set(dataset_genes) | set(prepared.go_graph.target))

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Build the priors
#
# Each prior is aligned to the data's genes and read for structure (sections 3 and 4) in one
# run, keyed on the parameters, the prepared data, the GeneMamba run and the files given.

# %%
gene2go = reference.gene2go()
processes = reference.go_terms().query("ontology == 'BP'").set_index("go_id").term
categories = priors.go_categories(gene2go, dataset_genes, processes)
mean_expression = pd.Series(
    np.asarray(adata.X.mean(axis=0)).ravel(), index=adata.var_names)
clusters = reference.single_clusters().set_index("gene").cluster
checkpoint = pipeline.folder("genemamba") / "genemamba.pt"
given = {"genemamba": checkpoint if checkpoint.is_file() else None,
         "file": embedding_file, "genemamba_published": published_genemamba}
names = ["go_svd", *(name for name, path in given.items() if path is not None)]


def build(pending):
    tables = {"go_svd": priors.go_svd_embeddings(
        gene2go, vocabulary_needed, go_svd_components)}
    if given["genemamba"] is not None:
        tables["genemamba"] = genemamba.embedding_table(checkpoint)
    if embedding_file is not None:
        tables["file"] = priors.read_embedding_table(embedding_file)
    if published_genemamba is not None:
        tables["genemamba_published"] = genemamba.published_embedding_table(
            published_genemamba, published_id_to_symbol)
    # every prior is checked before any is written
    built = priors.align_priors(tables, vocabulary_needed, reference.aliases(),
                                perturbed, {k: str(v) for k, v in given.items()})
    structure, neighbours = priors.prior_structure(
        built, dataset_genes, perturbed, mean_expression, categories, clusters,
        neighbour_genes)
    yield {f"{name}.parquet": table for name, table in built.tables.items()} | {
        "coverage.csv": built.coverage, "structure.csv": structure,
        "neighbours.csv": neighbours}


record = priors.embedding_parameters(
    prepared.fingerprint, go_svd_components, neighbour_genes, given,
    published_id_to_symbol)
outputs = [f"{n}.parquet" for n in names]
outputs += ["coverage.csv", "structure.csv", "neighbours.csv"]
(run,) = runs.reuse_or_compute(
    [runs.CachedRun(STEP, record)], outputs, build, force, "priors")
priors.remove_stale(out, names)
aligned = {n: run[f"{n}.parquet"] for n in names}
built = priors.AlignedPriors(aligned, run["coverage.csv"])
structure = run["structure.csv"]
display(built.summary)
display(Markdown(priors.go_coverage_sentence(gene2go, dataset_genes)))

# %% [markdown]
# ## 2. Which genes does each prior know?
#
# The seed study's "number of genes: Norman vs Mamba" diagram, for every prior: the dataset's
# genes, the prior's vocabulary and the perturbation targets.

# %%
for name in names:
    found = set(built.coverage.query("prior == @name and found").gene)
    sets = {"dataset genes": set(dataset_genes)}
    sets[f"{name} vocabulary (matched)"] = found
    sets["perturbation targets"] = set(perturbed)
    fig = plots.gene_venn(sets, title=f"Genes: data vs {name}")
    files.atomic_savefig(fig, out / f"venn_{name}.png")
    plt.show()

# %% [markdown]
# ## 3. Do genes that share a function sit together?
#
# A PCA of each prior's vectors for all genes of the data, coloured by a broad GO biological
# process. The categories are picked from the annotations, not by hand: the largest BP terms
# among the data's genes that overlap each other little (`helpers.models.priors.go_categories`).
# GO-SVD is built from these very annotations, so it separates them by construction; the
# question is whether GeneMamba, which never saw GO, does too.

# %%
for name, table in built.tables.items():
    known = table.loc[priors.known_genes(table, dataset_genes)]
    fig = plots.embedding_pca(
        known, categories, title=f"{name}: {len(known):,} genes (PCA)",
        legend_title="GO biological process",
    )
    files.atomic_savefig(fig, out / f"pca_go_{name}.png")
    plt.show()
    rho = structure.set_index("prior").at[name, "pc1_expression_rho"]
    print(f"{name}: Spearman ρ of PC1 with a gene's mean expression = {rho:.2f}")

# %% [markdown]
# ## 4. Do perturbed genes that act alike sit together?
#
# The same for the perturbed genes only, coloured by Norman's GI-manifold cluster (genes whose
# perturbations move cells alike; grey: unclustered), and each listed gene's five nearest
# perturbed neighbours by cosine similarity.

# %%
for name, table in built.tables.items():
    known = table.loc[priors.known_genes(table, perturbed)]
    fig = plots.embedding_pca(
        known, priors.cluster_labels(clusters),
        title=f"{name}: perturbed genes (PCA)", legend_title="Norman GI cluster",
        background="unclustered", name_points=True,
    )
    files.atomic_savefig(fig, out / f"pca_{name}.png")
    plt.show()
    display(run["neighbours.csv"].query("prior == @name").reset_index(drop=True))
display(structure.round(2))

# %% [markdown]
# ## What we found
#
# Each line below is computed from this build's tables (`coverage.csv`, `structure.csv`): what
# each prior covers, whether its leading axis is just expression level (a rank-token model
# first learns which genes tend to rank high), and how often a gene's five nearest neighbours
# share its broad GO process, or, for perturbed genes, its Norman GI cluster, against the rate
# of random neighbours.

# %%
simulated = (runs.data_provenance() or {}).get("data_source") == "simulated"
display(Markdown(embedding_findings(structure, built.coverage, simulated)))
