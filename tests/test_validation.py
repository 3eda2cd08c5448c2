"""Bad input: one clear line naming the key and what is allowed, exit 1, nothing left RUNNING."""

import sqlite3

import pytest

CANARY = "CANARY"  # a file a hostile target would create, relative to the test's tmp dir

# (overrides, how the one line starts, whether a run may exist: only stacks Keras refuses)
CORPUS = [
    # wrong types and values, refused while Hydra composes the config
    (["data.batch_size=two"], "data.batch_size: must be an integer, got 'two'", False),
    (["data.timesteps=1.5"], "data.timesteps: must be an integer, got '1.5'", False),
    (["data.features=2.5"], "data.features: must be an integer, got '2.5'", False),
    (["return_sequences=maybe"], "return_sequences: must be true or false, got 'maybe'", False),
    (["seed=abc"], "seed: must be an integer, got 'abc'", False),
    (["tolerance=abc"], "tolerance: must be a number, got 'abc'", False),
    (["model.units=three"], "model.units: must be an integer, got 'three'", False),
    (["backend=mxnet"], "backend: 'mxnet' is not one of tensorflow, jax, torch", False),
    (["merge_mode=concatenate"], "merge_mode: 'concatenate' is not one of concat, sum, mul, ave, "
     "none (did you mean concat?)", False),
    # ranges
    (["data.batch_size=0"], "data.batch_size: must be a positive integer, got 0", False),
    (["data.timesteps=-1"], "data.timesteps: must be a positive integer", False),
    (["data.features=0"], "data.features: must be a positive integer", False),
    (["model.units=0"], "model.units: must be a positive integer", False),
    (["seed=-1"], "seed: must be a non-negative integer", False),
    (["tolerance=0"], "tolerance: must be a positive number", False),
    (["data.scale=nan"], "data.scale: must be a finite number, got nan", False),
    (["data.scale=inf"], "data.scale: must be a finite number", False),
    (["+model.layers.0.dropout=1.5"], "model.layers.0.dropout: must be a rate in [0, 1)", False),
    (["+model.layers.0.recurrent_dropout=-0.1"], "model.layers.0.recurrent_dropout: must be a "
     "rate in [0, 1)", False),
    (["model=bilstm", "model.layers.0.merge_mode=avg"],
     "model.layers.0.merge_mode: 'avg' is not one of concat, sum, mul, ave, none", False),
    (["+model.layers.0.activation=swishy"], "model.layers.0.activation: 'swishy' is not one of",
     False),
    (["model.layers.0.return_sequences=sometimes"], "model.layers.0.return_sequences: must be "
     "true or false", False),
    # unknown keys, with and without +
    (["return_sequence=true"],
     "return_sequence: unknown key (did you mean return_sequences?); known: model, data", False),
    (["+return_sequence=true"],
     "return_sequence: unknown key (did you mean return_sequences?); known: model, data", False),
    (["data.batchsize=3"], "data.batchsize: unknown key (did you mean data.batch_size?)", False),
    (["+data.batchsize=3"], "data.batchsize: unknown key (did you mean data.batch_size?)", False),
    (["model.layers.0.unit=3"], "model.layers.0.unit: unknown argument (did you mean units?)",
     False),
    (["+model.layers.0.unit=3"], "model.layers.0.unit: unknown argument for LSTM (did you mean "
     "units?); known: activation,", False),
    (["model.layers.0.unroll=true"], "model.layers.0.unroll: not set in the model file; add it "
     "with +model.layers.0.unroll=true", False),
    (["+tracking.urii=x"], "tracking.urii: unknown key (did you mean tracking.uri?)", False),
    (["model.layers.5.units=3"], "model.layers.5: no such item", False),
    # ??? left unset
    (["model.units=???"], "model.units: no value given (???)", False),
    (["data.batch_size=???"], "data.batch_size: no value given (???)", False),
    # interpolations that resolve to nothing
    (["model.layers.0.units=${nope}"], "model.layers.0.units: ${nope} names no key of the "
     "config; write a value, or a key such as ${model.units}", False),
    (["seed=${oc.env:RUNNER_TEST_UNSET}"], "seed: ${oc.env:RUNNER_TEST_UNSET} reads "
     "$RUNNER_TEST_UNSET, which is not set; set it, or give a default: "
     "${oc.env:RUNNER_TEST_UNSET,DEFAULT}", False),
    (["seed=${nope:1}"], "seed: cannot resolve ${nope:1}: Unsupported interpolation type nope",
     False),
    # override grammar, unknown stack, a sweep without -m
    (["model=[lstm"], "model: cannot read 'model=[lstm' (no viable alternative at input '[lstm')",
     False),
    (["return_sequences=true,false"],
     "return_sequences: true,false is several values: add -m to sweep them", False),
    (["model=transformer"], "model: no stack named 'transformer'; available: bilstm, gru, "
     "guide_bidirectional, guide_cells", False),
    (["model=lstmm"], "model: no stack named 'lstmm' (did you mean lstm?)", False),
    (["data=big"], "data: no config named 'big'; available: default", False),
    (["data="], "data: needs a config name; available: default", False),
    (["model="], "model: needs a stack name; available: bilstm, gru, guide_bidirectional", False),
    (["+model=gru"], "model: already chosen by default; write model=gru", False),
    (["+model=lstm"], "model: already chosen by default; write model=lstm", False),
    # the data against the model's declared inputs: the model's own sizes win, a clash is refused
    (["model.input_shape=[30,1]", "data.features=3"],
     "data.features: 3, but model.input_shape fixes features at 1: set model.input_shape=[30,3] "
     "to draw it at 3", False),
    (["model=guide_stateful", "data.timesteps=20"],
     "data.timesteps: 20, but model.input_shape fixes timesteps at 10: set "
     "model.input_shape=[20,50] to draw it at 20", False),
    (["model=guide_bidirectional", "+data.inputs.inputs.features=3"],
     "data.inputs.inputs.features: 3, but model.input_shape fixes features at 10: set "
     "model.input_shape=[5,3] to draw it at 3", False),
    (["model=guide_encoder_decoder", "data.inputs.decoder_tokens.timesteps=10"],
     "data.inputs.decoder_tokens.timesteps: an input's own size is added, not changed: write "
     "+data.inputs.decoder_tokens.timesteps=10", False),
    (["model=guide_encoder_decoder", "+data.inputs.decoder.timesteps=10"],
     "data.inputs.decoder: the model has no input named 'decoder' (did you mean "
     "data.inputs.decoder_tokens?); its inputs: encoder_tokens, decoder_tokens", False),
    (["model=guide_encoder_decoder", "+data.inputs.decoder_tokens.timestep=10"],
     "data.inputs.decoder_tokens.timestep: unknown key (did you mean "
     "data.inputs.decoder_tokens.timesteps?); known: timesteps, features", False),
    (["model=guide_encoder_decoder", "+data.inputs.decoder_tokens.timesteps=0"],
     "data.inputs.decoder_tokens.timesteps: must be a positive integer, got 0", False),
    (["model=guide_encoder_decoder", "+data.inputs.decoder_tokens.features=3"],
     "data.inputs.decoder_tokens.features: model input 'decoder_tokens' is declared [null], "
     "without features", False),
    (["model.input_shape=[30,1,1]"], "model.input_shape: [30, 1, 1] must be [timesteps]", False),
    # stacks Keras cannot build: the run ends FAILED with the reason
    (["model=lambda_lstm", "model.layers.1.return_sequences=false"],
     "model.layers.2: LSTM needs a 3-D input (batch, timesteps, features), gets (4, 20)", True),
    (["model.input_shape=[30]"], "model.layers.0: LSTM needs a 3-D input", True),
    # graphs, masks and states that cannot work (the guide's models, changed)
    (["model=guide_encoder_decoder", "model.layers.2.input=encoder"],
     "model.layers.2: Embedding takes token ids, but reads the floats of model.layers.1", False),
    (["model=guide_embedding_lstm", "data.padding=0.5"],
     "data.padding: 0.5 pads the end of each sequence, but no layer masks the padding: set "
     "mask_zero: true on the Embedding", False),
    (["model=guide_encoder_decoder", "model.layers.1.return_state=false"],
     "model.layers.3.initial_state: layer 'encoder' returns no states; set return_state: true "
     "on it", False),
    (["model=guide_encoder_decoder", "model.layers.1.units=32"],
     "model.layers.3.initial_state: layer 'encoder' gives states of sizes [32, 32]; LSTM here "
     "keeps 2 of sizes [64, 64]: give both the same units", False),
    (["model=guide_encoder_decoder", "model.layers.0.input=nowhere"],
     "model.layers.0.input: 'nowhere' is neither a model input nor a layer's name; known: "
     "encoder_tokens, decoder_tokens, encoder_embedding", False),
    (["model=guide_encoder_decoder", "model.layers.2.input=decoder"],
     "model.layers.2.input: a cycle between layers: decoder_embedding -> decoder -> "
     "decoder_embedding; a layer reads a model input or a layer before it", False),
    (["model=guide_stateful", "model.batch_size=null"],
     "model.layers.0.stateful: a stateful layer carries its states from one batch to the next, "
     "so it needs a fixed batch", False),
    (["model=guide_stateful", "model.batch_size=8"],
     "model.batch_size: the model takes batches of 8 but data.batch_size=4", False),
    (["data.padding=1"], "data.padding: the fraction of each sequence that is padding, in [0, 1), "
     "got 1.0", False),
    (["+model.layers.0.kernel_initializer={_target_:os.system}"],
     "model.layers.0.kernel_initializer._target_: 'os.system' is not allowed", False),
    (["+model.layers.0.kernel_initializer={_target_:keras.initializers.get}"],
     "model.layers.0.kernel_initializer._target_: 'keras.initializers.get' is not allowed",
     False),
    (["model=guide_bidirectional", "+model.layers.2.activation=glu", "model.layers.2.units=5"],
     "model.layers.2.units: glu halves the output, so units must be even, got 5", False),
    (["+model.layers.0.activation=glu"],
     "model.layers.0.activation: 'glu' halves its input, so it cannot be a recurrent cell's "
     "activation", False),
    # the knobs that change speed
    (["timing.repeats=-1"], "timing.repeats: must be 0 or a positive integer, got -1", False),
    (["timing.warmup=x"], "timing.warmup: must be an integer, got 'x'", False),
    (["precision=float8"], "precision: 'float8' is not one of float32, mixed_float16, "
     "mixed_bfloat16 (did you mean float32?)", False),
    (["jit_compile=maybe"], "jit_compile: 'maybe' is not one of auto, true, false", False),
    # config never runs code
    (["model.layers.0._target_=os.system", f"+model.layers.0.command='touch {CANARY}'"],
     "model.layers.0._target_: 'os.system' is not allowed", False),
    (["model.layers.0._target_=logging.os.system", f"+model.layers.0.command='touch {CANARY}'"],
     "model.layers.0._target_: 'logging.os.system' is not allowed", False),
    (["model.layers.0._target_=subprocess.Popen", f"+model.layers.0.args=[touch,{CANARY}]"],
     "model.layers.0._target_: 'subprocess.Popen' is not allowed", False),
    (["model.layers.0._target_=builtins.eval", "+model.layers.0.source='1'"],
     "model.layers.0._target_: 'builtins.eval' is not allowed", False),
    (["model.layers.0._target_=importlib.import_module", "+model.layers.0.name=antigravity"],
     "model.layers.0._target_: 'importlib.import_module' is not allowed", False),
    (["model.layers.0._target_=hydra.utils.get_method", "+model.layers.0.path=os.system"],
     "model.layers.0._target_: 'hydra.utils.get_method' is not allowed", False),
    (["model=bilstm", "model.layers.0.layer._target_=os.system"],
     "model.layers.0.layer._target_: 'os.system' is not allowed", False),
    (["+data.hook._target_=os.system"], "data.hook: unknown key", False),
    (["model=lambda_lstm", "model.layers.0.function=system"],
     "model.layers.0.function: 'system' is not a runner function; known: expand_last_axis, scale",
     False),
]


def refusal(make_cfg, overrides) -> tuple:
    """(the line, whether a run is made): the line that refuses these overrides before any run,
    as the CLI prints it (Hydra's refusal while composing, or validate()'s), or for a stack Keras
    cannot build, the error its run ends FAILED with."""
    from runner.refusals import one_line
    from runner.validate import validate

    try:
        spec = validate(make_cfg(*overrides), overrides)  # as typed, as the CLI passes them
    except Exception as error:
        return one_line(error, overrides) or str(error), False
    return (str(spec.refusal) if spec.refusal else ""), True


@pytest.mark.parametrize("overrides,message,run_allowed", CORPUS,
                         ids=[" ".join(case[0]) for case in CORPUS])
def test_bad_input_is_refused_naming_the_key(make_cfg, tmp_path, overrides, message, run_allowed):
    line, runs = refusal(make_cfg, overrides)
    assert line.startswith(message) and "\n" not in line
    assert runs == run_allowed  # refused before any run, unless Keras cannot build the stack
    assert not (tmp_path / CANARY).exists()


# A handful of the corpus as a user types it: exit 1, the one line, no run unless Keras refused
STORIES = [case for case in CORPUS if case[0] in (
    ["data.batch_size=two"], ["return_sequence=true"], ["+return_sequence=true"],
    ["merge_mode=concatenate"], ["model=transformer"], ["model.input_shape=[30]"],
    ["model.layers.0.units=${nope}"], ["model="], ["+model=gru"], ["+model.layers.0.unit=3"],
    ["model.layers.0._target_=logging.os.system", f"+model.layers.0.command='touch {CANARY}'"])]


@pytest.mark.parametrize("overrides,message,run_allowed", STORIES,
                         ids=[" ".join(case[0]) for case in STORIES])
def test_bad_input_from_the_command_line(run_cli, tmp_path, overrides, message, run_allowed):
    result = run_cli(*overrides)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    if run_allowed:  # the run's own line: the stack, then why Keras cannot build it
        assert f"FAILED: StackError: {message}" in result.stdout
    else:
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, output
        assert result.stdout == ""
    assert not (tmp_path / CANARY).exists()
    store = tmp_path / "outputs" / "mlflow.db"
    if not run_allowed:
        assert not store.exists()  # refused before any run was created
        assert "tensorflow" not in output.lower()
    else:
        statuses = sqlite3.connect(store).execute("select status from runs").fetchall()
        assert statuses == [("FAILED",)]


@pytest.mark.parametrize("grid", [[], ["-m"]], ids=["run", "sweep"])
def test_a_sweep_preset_that_does_not_exist_is_refused(run_cli, tmp_path, grid):
    """`sweep` is an optional group, whose missing option Hydra would leave out silently."""
    result = run_cli(*grid, "sweep=sed")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "sweep: no sweep named 'sed' (did you mean seed?); available: " \
                            "backends, seed, speed\n"
    assert list(tmp_path.iterdir()) == []


def test_every_invalid_cell_of_a_grid_is_named_and_none_runs(run_cli, tmp_path):
    result = run_cli("-m", "model=lstm,gru", "data.batch_size=0,4", "+model.layers.0.dropout=0,2")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("  model=")]
    assert len(lines) == 6  # of 8 cells, every one with batch 0 or dropout 2
    assert "6 of 8 cells are invalid; no job was started" in result.stderr
    assert "  model=gru data.batch_size=4 +model.layers.0.dropout=2: model.layers.0.dropout: " \
           "must be a rate in [0, 1), got 2" in result.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_a_grid_cell_whose_interpolation_resolves_to_nothing_is_named_as_typed(run_cli, tmp_path):
    result = run_cli("-m", "seed=${nope},1")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("1 of 2 cells are invalid; no job was started:\n"
                             "  seed=${nope}: seed: ${nope} names no key of the config; write a "
                             "value, or a key such as ${model.units}\n")
    assert list(tmp_path.iterdir()) == []


# How the LSTM's return_sequences may be written in a model file, and whether the stack then
# takes the top-level knob: decided by what the config resolves, not by its text
WRITTEN = [
    ("${return_sequences}", True),
    ("${oc.select:return_sequences,false}", True),
    ("${....return_sequences}", True),  # relative: the layer, its list, the model, the top
    ("${oc.select:${oc.select:model.no_such_key,return_sequences},false}", True),  # key by key
    (False, False),
    ("${oc.select:model.no_such_key,false}", False),
]


@pytest.mark.parametrize("written,takes", WRITTEN)
def test_whether_a_stack_takes_a_knob_is_decided_by_what_its_config_reads(make_cfg, written,
                                                                          takes):
    from omegaconf import OmegaConf

    from runner.validate import validate

    cfg = make_cfg("model=lstm", "return_sequences=true")
    OmegaConf.update(cfg, "model.layers.0.return_sequences", written)
    spec = validate(cfg, ["return_sequences=true"])
    if takes:
        assert (spec.label, spec.unused) == ("lstm return_sequences=true", ())
        assert spec.expected.outputs == {"output": (4, 30, 3)}
    else:
        assert (spec.label, spec.unused) == ("lstm", ("return_sequences=true",))
        assert spec.expected.outputs == {"output": (4, 3)}


@pytest.mark.parametrize("name", ["merge_mode", "\\${merge_mode}"])
def test_a_value_that_only_mentions_a_knob_does_not_take_it(make_cfg, name):
    """An LSTM named after the knob, even `${merge_mode}` escaped, does not take it."""
    from omegaconf import OmegaConf

    from runner.validate import validate

    cfg = make_cfg("model=lstm", "merge_mode=sum")
    OmegaConf.update(cfg, "model.layers.0.name", name)
    spec = validate(cfg, ["merge_mode=sum"])
    assert spec.config["model"]["layers"][0]["name"] == name.lstrip("\\")
    assert (spec.label, spec.unused) == ("lstm return_sequences=false", ("merge_mode=sum",))


@pytest.mark.parametrize("units,needed", [("${model.units}", True),
                                          ("${oc.select:model.units,5}", False)])
def test_an_unset_optional_key_is_refused_only_where_an_interpolation_needs_it(make_cfg, units,
                                                                               needed):
    from omegaconf import OmegaConf

    from runner.errors import ConfigError
    from runner.validate import validate

    cfg = make_cfg("model=lstm", "model.units=???")
    OmegaConf.update(cfg, "model.layers.0.units", units)
    if needed:
        with pytest.raises(ConfigError, match=r"^model.units: no value given \(\?\?\?\)"):
            validate(cfg)
    else:
        assert validate(cfg).expected.outputs == {"output": (4, 5)}


def test_a_backend_not_installed_is_refused_with_its_extra(make_cfg, monkeypatch):
    import importlib.util

    from runner.errors import ConfigError
    from runner.validate import validate

    found = importlib.util.find_spec
    installed = {"jax": found("json"), "torch": None}  # as if only JAX were installed
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: installed[name] if name in installed
                        else found(name, *args))
    with pytest.raises(ConfigError) as refused:
        validate(make_cfg("backend=torch"))
    assert str(refused.value) == ("backend: torch is not installed here; pip install "
                                  "'rnn-shapes-runner[torch]' (docs/scaling.md: its GPU build)")
    assert validate(make_cfg("backend=jax")).config["backend"] == "jax"
