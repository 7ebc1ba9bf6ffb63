"""The metric names PromQL expressions select, with a real PromQL parser (PyPI promql-parser).

    python scripts/promql.py EXPRESSIONS.json
        EXPRESSIONS.json holds a JSON array of expressions (Grafana variables already
        substituted); prints a JSON array with, for each expression in order, either
        {"metrics": [names...], "labels": [label names matched...]} or {"error": "..."}.
        A selector without a literal metric name (e.g. {__name__=~"..."}) is an error: a
        renamed metric could not be caught.
"""
import json
import sys

import promql_parser as promql


def selectors(node):
    """Every vector selector under node."""
    if isinstance(node, promql.VectorSelector):
        yield node
    elif isinstance(node, promql.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql.AggregateExpr):
        yield from selectors(node.expr)
        if node.param is not None:
            yield from selectors(node.param)
    elif isinstance(node, promql.BinaryExpr):
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
    elif isinstance(node, promql.Call):
        for arg in node.args:
            yield from selectors(arg)
    elif isinstance(node, (promql.ParenExpr, promql.SubqueryExpr, promql.UnaryExpr)):
        yield from selectors(node.expr)
    elif isinstance(node, (promql.NumberLiteral, promql.StringLiteral)):
        return
    else:
        raise ValueError(f"unknown PromQL node {type(node).__name__}")


def names(expr):
    metrics, labels = [], []
    for selector in selectors(promql.parse(expr)):
        if not selector.name:
            raise ValueError("a selector without a metric name")
        metrics.append(selector.name)
        for m in selector.matchers.matchers:
            if m.name != "__name__":
                labels.append(m.name)
    return {"metrics": sorted(set(metrics)), "labels": sorted(set(labels))}


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        expressions = json.load(f)
    out = []
    for expr in expressions:
        try:
            out.append(names(expr))
        except Exception as e:  # the parser raises its own error types
            out.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
