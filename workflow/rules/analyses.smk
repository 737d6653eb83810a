# Analyses of trained runs: mask statistics and wiring (E6), reinit retraining (E1), further pruning (E2),
# emergence (E3).


# E6's wiring, E2's prune sweep and E3's emergence of a group's runs in one job (sparsenet.plan.analysis_groups):
# each analysis alone takes a fraction of a job's start-up. A group's analyses take longer than a run's E1
# retraining: started before those (after the trainings), they do not end the study alone.
for _group in ANALYSIS_GROUPS:

    rule:
        name:
            _group.name
        input:
            [f"{r.folder(DATASET)}/{F[f]}" for r in _group.runs for f in ("record", "final", "mask", "snapshots")],
        output:
            [f"{r.folder(DATASET)}/{A[k]}" for r in _group.runs for k in plan.analyses(config, _group.label)],
        log:
            group_log(_group, "analyse.log"),
        priority: 3
        conda:
            ENV
        threads: RES["threads"]
        resources:
            gpu=RES["gpus"],
        params:
            **analysis_params(_group),
            device=config["device"],
        shell:
            "python -m sparsenet analyse --runs {params.runs} {params.analyses} --device {params.device} "
            "--threads {threads} > {log} 2>&1"


# E1: all variants of one trained run in one job, trained as one fused group (sparsenet.fused): they share the
# run's recipe. For a run whose rewind replays it, that variant is recorded by record_rewind instead
# (TRAINED_VARIANTS, in common.smk).
if TRAINED_VARIANTS["changing"]:

    rule retrain:
        input:
            multiext(f"{RUN_PATTERN}/", F["record"], F["init"], F["mask"]),
        output:
            [f"{RUN_PATTERN}/reinit/{v}/{f}" for v in TRAINED_VARIANTS["changing"] for f in RUN_FILES],
        log:
            f"{RUN_PATTERN}/reinit/retrain.log",
        wildcard_constraints:
            label="|".join(re.escape(a) for a in SPARSE if a not in REPLAYED) or "^$",
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            **retrain_rule_params(TRAINED_VARIANTS["changing"]),
        shell:
            RETRAIN_CMD


if TRAINED_VARIANTS["replayed"]:

    rule retrain_replayed:
        input:
            multiext(f"{RUN_PATTERN}/", F["record"], F["init"], F["mask"]),
        output:
            [f"{RUN_PATTERN}/reinit/{v}/{f}" for v in TRAINED_VARIANTS["replayed"] for f in RUN_FILES],
        log:
            f"{RUN_PATTERN}/reinit/retrain.log",
        wildcard_constraints:
            label="|".join(re.escape(a) for a in REPLAYED) or "^$",
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            **retrain_rule_params(TRAINED_VARIANTS["replayed"]),
        shell:
            RETRAIN_CMD


# The rewind variant of a run that trained its final mask from its initial weights (an imp round, a static or
# pruned-at-init mask) replays that run exactly (seed, data order, weights, mask, steps): the same command
# records the trained run as the result instead of training it again, so the job needs no training resources.
rule record_rewind:
    input:
        multiext(f"{RUNS}/{{dataset}}-{{model}}/{{label}}/d{{density}}/s{{seed}}/", *RUN_FILES),
    output:
        multiext(f"{RUNS}/{{dataset}}-{{model}}/{{label}}/d{{density}}/s{{seed}}/reinit/rewind/", *RUN_FILES),
    log:
        f"{RUNS}/{{dataset}}-{{model}}/{{label}}/d{{density}}/s{{seed}}/reinit/rewind/train.log",
    wildcard_constraints:
        label="|".join(re.escape(a) for a in REPLAYED) or "^$",
    conda:
        ENV
    params:
        code=lambda w: code("retrain", (w.model, w.label, w.density, w.seed)),
        run=lambda w: f"{RUNS}/{w.dataset}-{w.model}/{w.label}/d{w.density}/s{w.seed}",
        out=lambda w, output: Path(output[0]).parent,
    shell:
        "python -m sparsenet retrain --run {params.run} --variant rewind --out {params.out} > {log} 2>&1"
