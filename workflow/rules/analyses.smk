# Analyses of trained runs: mask statistics and wiring (E6), reinit retraining (E1), further pruning (E2),
# emergence (E3).


rule mask_stats:
    input:
        f"{RUNS}/{{run}}/{F['mask']}",
    output:
        f"{RUNS}/{{run}}/layers.parquet",
    log:
        f"{RUNS}/{{run}}/mask_stats.log",
    conda:
        ENV
    params:
        code=lambda w: code("mask-stats", run_of(w.run)),
        run=lambda w: f"{RUNS}/{w.run}",
    shell:
        "python -m sparsenet mask-stats --run {params.run} --out {output} > {log} 2>&1"


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


rule prune_sweep:
    input:
        multiext(f"{RUNS}/{{run}}/", F["record"], F["final"], F["mask"]),
    output:
        f"{RUNS}/{{run}}/prune_sweep.parquet",
    log:
        f"{RUNS}/{{run}}/prune_sweep.log",
    conda:
        ENV
    threads: RES["threads"]
    resources:
        gpu=RES["gpus"],
    params:
        device=config["device"],
        code=lambda w: code("prune-sweep", run_of(w.run)),
        run=lambda w: f"{RUNS}/{w.run}",
        fractions=" ".join(str(q) for q in config["prune_sweep"]["fractions"]),
        methods=" ".join(config["prune_sweep"]["methods"]),
        draws=config["prune_sweep"]["draws"],
        bn="--recompute-bn" if config["prune_sweep"]["recompute_bn"] else "",
    shell:
        "python -m sparsenet prune-sweep --run {params.run} --out {output} --fractions {params.fractions} "
        "--methods {params.methods} --draws {params.draws} {params.bn} --device {params.device} "
        "--threads {threads} > {log} 2>&1"


rule emergence:
    input:
        multiext(f"{RUNS}/{{run}}/", F["record"], F["snapshots"], F["mask"]),
    output:
        f"{RUNS}/{{run}}/emergence.parquet",
    log:
        f"{RUNS}/{{run}}/emergence.log",
    conda:
        ENV
    params:
        code=lambda w: code("emergence", run_of(w.run)),
        run=lambda w: f"{RUNS}/{w.run}",
    shell:
        "python -m sparsenet emergence --run {params.run} --out {output} > {log} 2>&1"
