"""Trainer code: preprocessing_fn, attention layer, model, run_fn, signatures
(which serve the network with its embedding folded into the LSTM: folded_bilstm).

The project uses Keras 2 (`tf_keras`), as TFX's own images do: TF Transform's
TransformFeaturesLayer and TFMA 0.47 are built on it, `model.save` writes a
SavedModel, and its LSTM exports a graph that picks the cuDNN or the generic
kernel at run time, so a GPU-trained model still loads on CPU. Importing
tensorflow_transform would set this variable anyway; setting it here first
makes the choice explicit and independent of import order.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
