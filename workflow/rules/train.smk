# Training: dense and each sparse algorithm per density and seed; imp as a chain of rounds per seed.


# One job per training group of the plan (sparsenet.plan.train_groups): runs of one model and label, at most
# resources.runs_per_job of them, trained at once as one fused model; each writes its own run folder.
# Every analysis and retraining waits on one: started before those (after imp's chains), they leave the short
# jobs to fill the cores at the end.
for _group in TRAIN_GROUPS:

    rule:
        name:
            _group.name
        output:
            [f"{r.folder(DATASET)}/{f}" for r in _group.runs for f in RUN_FILES],
        log:
            group_log(_group, "train.log"),
        priority: 5
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            **group_params(_group),
            device=config["device"],
        shell:
            "python -m sparsenet train --out '{params.out}' {params.fuse} {params.settings} "
            "--device {params.device} --threads {threads} > {log} 2>&1"


# Each round trains under the previous round's next mask and prunes to the next density of SCHEDULE; the chains
# of a group of seeds (sparsenet.plan.chain_groups) train each round in lockstep, as one fused model.
# The chains are the longest sequences of jobs in a study: scheduled first, they do not end it alone.
for _chain in CHAIN_GROUPS:

    rule:
        name:
            f"imp_round_{_chain.name}"
        input:
            functools.partial(imp_prev, _chain),
        output:
            imp_outputs(_chain, "{round}", F["next_mask"]),
        log:
            imp_log(_chain, "{round}"),
        wildcard_constraints:
            round="|".join(f"{r:02d}" for r in range(len(SCHEDULE) - 1)),
        priority: 10
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            **imp_params(_chain),
        shell:
            IMP_CMD

    rule:
        name:
            f"imp_last_round_{_chain.name}"
        input:
            functools.partial(imp_prev, _chain),
        output:
            imp_outputs(_chain, LAST_ROUND),
        log:
            imp_log(_chain, LAST_ROUND),
        priority: 10
        conda:
            ENV
        threads: RES["threads"]
        resources:
            runtime=RES["train_runtime_min"],
            mem_mb=RES["train_mem_mb"],
            gpu=RES["gpus"],
        params:
            **imp_params(_chain),
        shell:
            IMP_CMD


# The imp run at a density is the round of the chain that reaches it: a copy, made as soon as that round is done.
rule imp_select:
    input:
        lambda w: expand(
            f"{RUNS}/{w.dataset}-{w.model}/imp/chain/s{w.seed}/r{SCHEDULE.index(float(w.density)):02d}/{{f}}",
            f=RUN_FILES,
        ),
    output:
        multiext(f"{RUNS}/{{dataset}}-{{model}}/imp/d{{density}}/s{{seed}}/", *RUN_FILES),
    log:
        f"{RUNS}/{{dataset}}-{{model}}/imp/d{{density}}/s{{seed}}/select.log",
    priority: 10
    conda:
        ENV
    params:
        out=lambda w, output: Path(output[0]).parent,
    shell:
        "cp {input} {params.out}/ > {log} 2>&1"
