"""Perturbation-response models. Every model ends in the same artefact (``helpers.predictions``):
the predicted mean expression per condition."""
