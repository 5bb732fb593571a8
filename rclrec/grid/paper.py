"""The paper's reported numbers (docs/METHOD.md section 6), to print beside ours."""

from __future__ import annotations

METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10")

# Table 2 (SASRec backbone, full ranking): dataset -> method -> (HR@5, HR@10, NDCG@5, NDCG@10).
TABLE2: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "beauty": {
        "sasrec": (.0365, .0627, .0236, .0281), "cl4srec": (.0401, .0683, .0263, .0317),
        "ct4rec": (.0575, .0856, .0342, .0428), "mclrec": (.0581, .0861, .0352, .0446),
        "contrarec": (.0551, .0855, .0354, .0442), "hpm": (.0572, .0860, .0361, .0454),
        "rcl": (.0601, .0898, .0377, .0476),
    },
    "sports": {
        "sasrec": (.0218, .0336, .0127, .0169), "cl4srec": (.0227, .0374, .0149, .0194),
        "ct4rec": (.0311, .0479, .0189, .0260), "mclrec": (.0328, .0501, .0204, .0260),
        "contrarec": (.0328, .0502, .0206, .0264), "hpm": (.0334, .0506, .0214, .0271),
        "rcl": (.0354, .0528, .0227, .0287),
    },
    "ml-1m": {
        "sasrec": (.1087, .1904, .0638, .0910), "cl4srec": (.1147, .1975, .0662, .0928),
        "ct4rec": (.1987, .2904, .1346, .1634), "mclrec": (.2041, .2933, .1389, .1683),
        "contrarec": (.2039, .2944, .1392, .1682), "hpm": (.2043, .2951, .1402, .1696),
        "rcl": (.2113, .3045, .1469, .1763),
    },
    "yelp": {
        "sasrec": (.0155, .0268, .0103, .0133), "cl4srec": (.0233, .0342, .0122, .0151),
        "ct4rec": (.0433, .0617, .0307, .0356), "mclrec": (.0454, .0647, .0332, .0394),
        "contrarec": (.0439, .0618, .0333, .0388), "hpm": (.0461, .0651, .0335, .0399),
        "rcl": (.0481, .0675, .0358, .0418),
    },
}

# Table 3 (FMLP-Rec backbone): method as run here (sasrec = the plain FMLP-Rec backbone).
TABLE3: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "yelp": {
        "sasrec": (.0197, .0321, .0148, .0185),
        "hpm": (.0473, .0657, .0357, .0423),
        "rcl": (.0496, .0686, .0379, .0452),
    },
}

# Table 1 after preprocessing: users, items, actions.
TABLE1: dict[str, tuple[int, int, int]] = {
    "beauty": (22363, 12101, 198502),
    "sports": (35598, 18357, 296337),
    "ml-1m": (6041, 3417, 999611),
    "yelp": (30499, 20068, 317182),
    "ml-20m": (138493, 27278, 20000263),
}

# Section 1: share of sequences with no same-target sequence.
NO_SAME_TARGET: dict[str, float] = {"ml-1m": 0.475, "beauty": 0.527}


def table2_value(dataset: str, method: str, metric: str, encoder: str = "sasrec"
                 ) -> float | None:
    table = TABLE3 if encoder == "fmlp" else TABLE2
    row = table.get(dataset.lower(), {}).get(method)
    return None if row is None else row[METRICS.index(metric)]
