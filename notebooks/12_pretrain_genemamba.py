# %% [markdown]
# # Pretraining GeneMamba
#
# In this notebook we pretrain a small GeneMamba, a bidirectional Mamba-2 single-cell model
# (Qi et al. 2025), on the cells GEARS is allowed to learn from (control cells and training
# perturbations, never a validation or test perturbation), and keep its gene embeddings for the
# next chapter.
#
# A cell becomes a sequence of gene tokens: `<cls>` followed by its expressed genes from highest
# to lowest expression (rank encoding), cut to the context length. Each block reads the sequence
# forward and, with the same weights, reversed, and averages the two reads. The objective is
# next-token prediction plus 0.1 × an InfoNCE loss that pulls co-expressed genes together. The
# next-token loss is taken on each direction's own read (the next gene forward, the previous
# gene backward), because after averaging a position would see the token it is asked to predict.
#
# The published GeneMamba was pretrained on ~30 million cells with a 2,048-token context on
# GPUs; its weights live on a model hub this machine cannot reach. What we train here is the
# same architecture at CPU size on this screen's training cells only: a fair test of what the
# *approach* adds, not of the published weights (a user who has them can pass their token
# embeddings as a table to the next chapter).

# %% tags=["parameters"]
profile = "default"  # 'quick', 'default', 'norman_cpu' or 'full'
steps = None  # None: optimisation steps from the profile
context_length = None  # None: tokens per cell from the profile
d_model = 128  # model width
n_layers = 2  # BiMamba blocks
batch_size = 8  # cells per step
learning_rate = 0.001  # AdamW learning rate
infonce_weight = 0.1  # weight of the co-expression InfoNCE loss
eval_every = None  # None: a tenth of the steps (the held-out next-token loss curve)
seed = 0  # seed of initialisation and batches
device = "auto"  # 'auto' means CUDA when present, else CPU
force = False  # retrain even if a checkpoint for these parameters exists

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from helpers import convergence, data, files, pipeline, plots, profiles, roots, runs
from helpers.models import genemamba as gm
from helpers.models.torch_runtime import resolve_device

STEP = pipeline.PRETRAIN_GENEMAMBA
settings = profiles.resolve_parameters(
    profile, pretrain_steps=steps, context_length=context_length
)
eval_every = eval_every or max(1, settings.pretrain_steps // 10)
prepared = data.load_prepared()
out = roots.step_dir(STEP)
adata, split = prepared.adata, prepared.split
genes = adata.var["gene_name"].astype(str).tolist()
config = gm.GeneMambaConfig(
    vocab_size=len(genes) + gm.N_SPECIAL_TOKENS, d_model=d_model, n_layers=n_layers
)
parameters = {
    "data_run": prepared.fingerprint,
    "config": config,
    "steps": settings.pretrain_steps,
    "context_length": settings.context_length,
    "batch_size": batch_size,
    "learning_rate": learning_rate,
    "infonce_weight": infonce_weight,
    "eval_every": eval_every,
    "seed": seed,
    "code": runs.code_digest("helpers.models.genemamba"),  # a code change retrains
}

# %% tags=["remove-input"]
# which data this page shows, and the budget
display(Markdown(runs.data_statement(profile)))

# %% [markdown]
# ## 1. Training cells as rank tokens

# %%
# the held-out cells are never trained on: the held-out loss curve
cells = gm.pretraining_data(adata, split.train, settings.context_length)
display(cells.summary)

# %% [markdown]
# ## 2. Pretrain

# %%
def pretrain(pending):
    model = gm.GeneMamba(config, seed=seed)
    history = gm.pretrain(
        model, cells.tokens[~cells.held_out], cells.coexpressed,
        settings.pretrain_steps, batch_size, seed, lr=learning_rate,
        infonce_weight=infonce_weight, device=str(resolve_device(device)),
        held_out=cells.tokens[cells.held_out], eval_every=eval_every,
    )
    yield {"genemamba.pt": gm.checkpoint(model, genes), "loss.csv": history}


job = runs.CachedRun(STEP, parameters)
(run,) = runs.reuse_or_compute(
    [job], ["genemamba.pt", "loss.csv"], pretrain, force, "pretraining")
history = run["loss.csv"]
print(gm.loss_summary(history, config.vocab_size))

# %%
fig = plots.pretraining_curve(history)
files.atomic_savefig(fig, out / "loss.png")
plt.show()
held = history.dropna(subset=["held_out_lm_loss"])
held = held.assign(model="genemamba", seed=seed)
# one fixed set of cells: no check-to-check noise
plateau = convergence.convergence_table(
    held, ["model", "seed"], error="held_out_lm_loss", window=1
)
what = ("GeneMamba pretraining", "held-out next-token loss")
display(Markdown(convergence.describe(plateau, *what)))

# %% [markdown]
# ## What we found
#
# - The printed losses show how far pretraining got at this size: the next-token loss against
#   the uniform guess, and the InfoNCE term, which moves slowly at a weight of 0.1. The
#   throughput is this machine's (CPU) figure for the pure-PyTorch Mamba-2 scan.
# - The model's token embedding table is GeneMamba's view of the genes; the next chapter turns it
#   into a prior for GEARS and checks whether genes that act alike end up close.
