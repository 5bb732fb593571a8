"""Benchmark suites (a grid of resumable, hash-named `train` cells) and the report built from
their small committed JSON files.

Layout of a results folder (committed) and a work folder (git-ignored)::

    <results>/cells/<hash>/cell.json        one per trained configuration (metrics, settings)
    <results>/searches/<name>.json          every tried cell of a hyper-parameter search
    <results>/suites/<group>.json           what a suite expected, done and missing (reasons)
    <results>/datasets/<name>.json          Table 1 statistics, Figure 1 histograms
    <results>/analysis/<hash>/analysis.json Figures 5 and 6 of a trained cell (+ t-SNE PNG)
    <work>/<hash>/                          the run folder: checkpoints, model.pt (bulky)
"""
