"""The lifecycle both compression callbacks share (Keras 3 and tf_keras).

A compression callback selects the model's compressible variables, resolves
per-layer overrides into a setting per variable, and, when compression starts,
installs one constraint per variable (the optimizer applies it after every
update) and retraces the train step. It counts optimizer steps, writes what it
did into ``logs`` each epoch, and at the end of fit uninstalls its constraints
and retraces again, leaving the model as it was apart from the weights.

Subclasses say only what differs: the setting of a variable, the constraint
that enforces it, what happens at each step, and what is logged and printed.
"""

import dataclasses
from typing import Any

import keras

from keras_dc import _keras_glue as glue
from keras_dc.selection import (
    compressible_variables,
    override_items,
    resolve_overrides,
    variable_path,
)


@dataclasses.dataclass
class Entry:
    """One compressed variable: its setting and the constraint installed on it."""

    variable: Any
    setting: Any
    constraint: Any


class CompressionCallback(keras.callbacks.Callback):
    """Base of `MagnitudePruning` and `WeightClustering`.

    Lifecycle: ``on_train_begin`` checks the model, selects the variables
    (`compressible_variables`), resolves ``overrides`` (`_make_plan`) and, when compression
    starts now, activates; activation prepares every variable at once
    (`_prepare`, so a distributed collective runs once), installs a constraint
    per variable (`_constraint`), retraces the train step and prints the
    selection table. Each train batch activates at ``_start_step`` if not yet
    active, then passes the steps of the batch to `_at_steps`. Each epoch
    writes `_epoch_logs` into ``logs``. ``on_train_end`` uninstalls every
    constraint, retraces and prints `_summary`.

    Subclasses set ``name`` and implement `_convert_override`,
    `_default_setting`, `_constraint`, `_selection_fields`, `_selection_title`,
    `_selection_detail`, `_epoch_logs`; the other hooks are optional.

    Attributes:
        selected: After activation, one dict per compressed variable: ``path``,
            ``shape`` and the subclass's `_selection_fields`.
    """

    name = "CompressionCallback"

    def __init__(self, overrides=None, min_size=256, verbose=1):
        super().__init__()
        for _, value in override_items(overrides, self.name):
            self._convert_override(value)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, received {verbose!r}.")
        self.overrides = overrides
        self.min_size = min_size
        self.verbose = verbose
        self.selected = []
        self._entries = []
        self._active = False

    # --- what subclasses provide -----------------------------------------------

    def _convert_override(self, value):
        """Validates an override value; returns it converted (``None``: skip the variable)."""
        raise NotImplementedError

    def _default_setting(self, variable):
        """The setting of a variable that no override names."""
        raise NotImplementedError

    def _begin(self):
        """Per-fit state, after ``_step`` and ``_steps_per_epoch`` are known; returns ``_start_step``."""
        return self._step

    def _prepare(self, plan):
        """Per-variable data for `_constraint`, computed for all ``(variable, setting)`` at once."""
        return [None] * len(plan)

    def _constraint(self, index, variable, setting, prepared):
        """The constraint to install on ``variable`` (it gets an ``inner`` attribute)."""
        raise NotImplementedError

    def _selection_fields(self, entry):
        """Extra fields of ``entry``'s row in ``selected``."""
        return {}

    def _selection_title(self):
        """First line of the selection table, after the callback's name."""
        raise NotImplementedError

    def _selection_detail(self, item):
        """End of the selection table's row for ``item`` (a ``selected`` dict)."""
        raise NotImplementedError

    def _at_steps(self, steps):
        """Called before each train batch once active; ``steps`` is a range of optimizer steps."""

    def _epoch_logs(self):
        """``{key: float}`` written into the epoch's ``logs`` once active."""
        raise NotImplementedError

    def _epoch_line(self, epoch, fields):
        """The verbose line of an epoch (``fields`` from `_epoch_logs`), or ``None``."""
        return None

    def _summary(self):
        """The verbose text printed at the end of fit, or ``None``."""
        return None

    # --- selection ---------------------------------------------------------------

    def _make_plan(self, model):
        """``[(variable, setting), ...]``: what to compress, from selection and overrides.

        Subclasses may extend it (`WeightClustering` adds the layers' biases).
        """
        variables = compressible_variables(model, self.min_size)
        if not variables:
            raise ValueError(
                f"{self.name}: no compressible variable found in model {model.name!r}: "
                f"it needs trainable float kernels or embeddings with at least min_size="
                f"{self.min_size} entries. Lower min_size or check the model."
            )
        resolved = resolve_overrides(
            model, variables, self.overrides, self._convert_override, self.name
        )
        plan = []
        for variable in variables:
            setting = (
                resolved[id(variable)]
                if id(variable) in resolved
                else self._default_setting(variable)
            )
            if setting is not None:
                plan.append((variable, setting))
        if not plan:
            raise ValueError(f"{self.name}: every compressible variable was excluded by overrides.")
        return plan

    # --- lifecycle ---------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        glue.check_model(model, self.name)
        self._plan = self._make_plan(model)
        self._entries, self.selected, self._active = [], [], False
        self._steps_per_epoch = glue.steps_per_epoch(self.params)
        self._step = glue.optimizer_step(model)
        self._start_step = self._begin()
        if self._step >= self._start_step:
            self._activate()

    def on_train_batch_begin(self, batch, logs=None):
        steps = range(self._step, self._step + glue.execution_steps(self.model))
        if not self._active and steps.stop > self._start_step:
            self._activate()
        if self._active:
            self._at_steps(steps)

    def on_train_batch_end(self, batch, logs=None):
        self._step += glue.execution_steps(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if not self._active:
            return
        fields = self._epoch_logs()
        if logs is not None:
            logs.update(fields)
        line = self._epoch_line(epoch, fields)
        if line is not None:
            self._print(line)

    def on_train_end(self, logs=None):
        for entry in self._entries:
            glue.uninstall(entry.variable, entry.constraint)
        glue.retrace(self.model)
        if self._active and self.verbose:
            summary = self._summary()
            if summary is not None:
                self._print(summary)

    # --- shared steps ------------------------------------------------------------

    def _activate(self):
        """Installs a constraint on every planned variable and retraces the train step."""
        prepared = self._prepare(self._plan)
        for index, ((variable, setting), data) in enumerate(zip(self._plan, prepared)):
            constraint = self._constraint(index, variable, setting, data)
            glue.install(variable, constraint)
            entry = Entry(variable, setting, constraint)
            self._entries.append(entry)
            self.selected.append(
                {
                    "path": variable_path(variable),
                    "shape": tuple(int(d) for d in variable.shape),
                    **self._selection_fields(entry),
                }
            )
        self._active = True
        if self.verbose:
            self._print(self._selection_table())
        glue.retrace(self.model)

    def _selection_table(self):
        lines = [f"{self.name}: {self._selection_title()}:"]
        for item in self.selected:
            shape = "x".join(str(d) for d in item["shape"])
            lines.append(f"  {item['path']:<48s} {shape:>16s}  {self._selection_detail(item)}")
        return "\n".join(lines)

    def _print(self, message):
        if self.verbose:
            print(message, flush=True)

    # --- tf_keras compatibility --------------------------------------------------

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
