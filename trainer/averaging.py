"""Exponential moving average (EMA) of the weights, used for validation and export.

The eval accuracy of this model wobbles by about ±0.5 points from one half
epoch to the next; an average of the recent weights is a steadier and usually
better model than the last step's. Averaging happens in the Keras fit loop:

* after every training batch the average moves towards the current weights,
  with a momentum that ramps up as `min(momentum, (1 + t) / (10 + t))` so the
  first steps do not tie the average to the initial weights;
* while Keras validates at the end of an epoch the model *holds the average*,
  and keeps holding it through `on_epoch_end`, so `EarlyStopping(restore_best_
  weights=True)` records the averaged weights it has just validated; the raw
  weights come back before the next epoch trains;
* at the end of training the model holds the average (or whatever
  EarlyStopping restores after it, which is also an average).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras


class WeightAveraging(keras.callbacks.Callback):
    """Keeps an EMA of the trainable weights; validation and export see the EMA.

    Put it *before* EarlyStopping in the callback list.
    """

    def __init__(self, momentum: float):
        super().__init__()
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"weight averaging momentum must be in (0, 1), got {momentum}")
        self.momentum = momentum
        self.averages: List[tf.Variable] = []
        self._raw: Optional[List[np.ndarray]] = None
        self._training = False

    def on_train_begin(self, logs=None):
        variables = self.model.trainable_variables
        with self.model.distribute_strategy.scope():
            self.averages = [tf.Variable(v, trainable=False, name=f"ema_{i}")
                             for i, v in enumerate(variables)]
            self._step = tf.Variable(0.0, trainable=False, name="ema_step")
        self._update = tf.function(self._update_averages)
        self._training = True

    def _update_averages(self) -> None:
        step = self._step.assign_add(1.0)
        decay = tf.minimum(self.momentum, (1.0 + step) / (10.0 + step))
        for average, variable in zip(self.averages, self.model.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * tf.cast(variable, average.dtype))

    def on_train_batch_end(self, batch, logs=None):
        self._update()

    def swap_in_average(self) -> None:
        """Makes the model hold the average (remembering the raw weights once)."""
        if self._raw is None:
            self._raw = [v.numpy() for v in self.model.trainable_variables]
            for variable, average in zip(self.model.trainable_variables, self.averages):
                variable.assign(average)

    def restore_raw(self) -> None:
        """Puts back the raw weights that training continues from."""
        if self._raw is not None:
            for variable, value in zip(self.model.trainable_variables, self._raw):
                variable.assign(value)
            self._raw = None

    def on_test_begin(self, logs=None):
        if self._training:
            self.swap_in_average()

    def on_epoch_begin(self, epoch, logs=None):
        self.restore_raw()

    def on_train_end(self, logs=None):
        self._training = False
        self._raw = None
        for variable, average in zip(self.model.trainable_variables, self.averages):
            variable.assign(average)
