# Tables from the per-run outputs, figures from the tables alone, both for the report.


# cheap steps stay on the submitting machine when the jobs go to a cluster
localrules:
    tables,
    figures,
    summary,
    similarity,
    imp_select,


rule tables:
    input:
        runs=[f"{r}/{F['record']}" for r in ALL_RUNS],
        retrains=[f"{r}/{F['record']}" for r in RETRAINS],
        sweeps=ANALYSED["prune"],
        emergence=ANALYSED["emergence"],
        layers=ANALYSED["layers"],
    output:
        TABLES,
    log:
        "results/logs/tables.log",
    conda:
        ENV
    params:
        code=code("tables"),
        runs=lambda w, input: " ".join(str(Path(p).parent) for p in input.runs),
        retrains=lambda w, input: " ".join(str(Path(p).parent) for p in input.retrains),
    shell:
        "python -m sparsenet tables --out results/tables --runs {params.runs} --retrains {params.retrains} "
        "--sweeps {input.sweeps} --emergence {input.emergence} --layers {input.layers} > {log} 2>&1"


# E5: every final mask read once, all pairs compared in memory
rule similarity:
    input:
        [f"{r}/{f}" for r in MASKED_RUNS for f in (F["record"], F["mask"])],
    output:
        "results/tables/similarity.parquet",
    log:
        "results/logs/similarity.log",
    conda:
        ENV
    params:
        code=code("similarity"),
        runs=" ".join(MASKED_RUNS),
    shell:
        "python -m sparsenet similarity --runs {params.runs} --out results/tables > {log} 2>&1"


rule figures:
    input:
        TABLES,
        "results/tables/similarity.parquet",
    output:
        [
            report(f"results/figures/{name}.png", caption=f"../report/{name}.rst", category="Figures")
            for name in figures.FIGURES
        ],
        [f"results/figures/{name}.pdf" for name in figures.FIGURES],
    log:
        "results/logs/figures.log",
    conda:
        ENV
    params:
        code=code("figures"),
    shell:
        "python -m sparsenet figures --tables results/tables --out results/figures > {log} 2>&1"


rule summary:
    input:
        TABLES,
        "results/tables/similarity.parquet",
    output:
        markdown="results/summary.md",
        html=report("results/summary.html", caption="../report/summary.rst", category="Summary"),
        answers="results/answers.rst",
    log:
        "results/logs/summary.log",
    conda:
        ENV
    params:
        code=code("summary"),
    shell:
        "python -m sparsenet summary --tables results/tables --out {output.markdown} --html {output.html} "
        "--rst {output.answers} > {log} 2>&1"
