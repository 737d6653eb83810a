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


# E1: one job per retraining group of the plan (sparsenet.plan.retrain_groups): a sparse algorithm's runs, at most
# resources.runs_per_job retrainings (each run's variants), trained as one fused model (sparsenet.fused). The rewind
# of a run that trained its final mask from its initial weights (an imp round, a static or pruned-at-init mask)
# would replay it exactly: the same job records the trained run as its result; a job that only records is local.
for _group in RETRAIN_GROUPS:

    rule:
        name:
            _group.name
        input:
            [f"{r.folder(DATASET)}/{f}" for r in _group.runs for f in RUN_FILES],
        output:
            [f"{r.folder(DATASET)}/reinit/{v}/{f}" for r in _group.runs for v in E1_VARIANTS for f in RUN_FILES],
        log:
            group_log(_group, "reinit/retrain.log"),
        localrule: not plan.retrained_variants(config, _group.label)
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            runs=" ".join(r.folder(DATASET) for r in _group.runs),
            variants=",".join(E1_VARIANTS),
            code=code("retrain", (_group.model, _group.label, _group.runs[0].density, _group.runs[0].seed)),
            device=config["device"],
        shell:
            "python -m sparsenet retrain --run {params.runs} --variant {params.variants} "
            "--out '{{run}}/reinit/{{variant}}' --device {params.device} --threads {threads} > {log} 2>&1"
