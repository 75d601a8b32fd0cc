"""The base both compression callbacks share (Keras 3 and tf_keras)."""

import keras


class CompressionCallback(keras.callbacks.Callback):
    """Keras 3 callback that tf_keras's CallbackList also accepts."""

    # tf_keras's CallbackList asks these; Keras 3 does not define them.
    _supports_tf_logs = False

    def _implements_train_batch_hooks(self):
        return True

    def _implements_test_batch_hooks(self):
        return False

    def _implements_predict_batch_hooks(self):
        return False

    def set_model(self, model):
        # Keras 3's base stores it in `_model`; keep `model` readable either way.
        self._model = model

    @property
    def model(self):
        return getattr(self, "_model", None)

    def _print(self, message):
        if self.verbose:
            print(message, flush=True)
