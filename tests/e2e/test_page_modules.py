"""The page's pure modules under Node, without a browser: tree.js (the history as a tree, the
versions of a question, where a branch ends) and dom.js's `titleFrom`, the twin of the service's
heuristic title (app/services/titles.py): a new thread's title must not change when the service
retitles it offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from app.services.titles import heuristic_title
from tests.e2e.conftest import node_tool

UI_DIR = Path(__file__).resolve().parents[2] / "app" / "ui"
QUESTIONS = [
    "Who committed the latest malware threat?",
    "Hi! Can you please tell me who is behind the latest ransomware threat? It is for a report.",
    "hello",
    "what was their IP address",
    "Could you show me   the latest\nport scan threat. And the user?",
    "I want to know the email of the user who committed the latest phishing attack on the laptops",
    "ok so tell me, please: which threats came from 10.1.214.23 yesterday and today and last week",
]


def run_module(script: str) -> Any:
    """Run an ES module snippet with Node and parse the JSON it prints."""
    done = subprocess.run(
        [node_tool("node"), "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_page_and_the_service_title_a_question_alike() -> None:
    titles = run_module(
        f"import {{ titleFrom }} from {json.dumps((UI_DIR / 'dom.js').as_uri())};"
        f"console.log(JSON.stringify({json.dumps(QUESTIONS)}.map(titleFrom)));"
    )
    assert titles == [heuristic_title(q) for q in QUESTIONS]
    assert titles[1] == "Who is behind the latest ransomware threat?"
    assert all(len(title) <= 48 for title in titles)


def test_the_history_tree_reads_top_down_with_forks_indented() -> None:
    # a -> b -> d (the head), and c forked from a; e is a new first question (from "~start").
    checkpoints = [
        {"checkpoint_id": "e", "parent_checkpoint_id": None, "created_at": "2026-01-01T00:00:05Z"},
        {
            "checkpoint_id": "d",
            "parent_checkpoint_id": "b",
            "created_at": "2026-01-01T00:00:04Z",
            "is_head": True,
        },
        {"checkpoint_id": "c", "parent_checkpoint_id": "a", "created_at": "2026-01-01T00:00:03Z"},
        {"checkpoint_id": "b", "parent_checkpoint_id": "a", "created_at": "2026-01-01T00:00:02Z"},
        {"checkpoint_id": "a", "parent_checkpoint_id": None, "created_at": "2026-01-01T00:00:01Z"},
    ]
    tree_js = json.dumps((UI_DIR / "tree.js").as_uri())
    found = run_module(
        f"import {{ buildTree, treeOrder, versionsOf, tipOf }} from {tree_js};"
        f"const tree = buildTree({json.dumps(checkpoints)});"
        "const n = (id) => tree.nodes.get(id);"
        "console.log(JSON.stringify({"
        "  order: treeOrder(tree).map((x) => [x.checkpoint_id, x.branch, x.turn, x.depth]),"
        "  versionsOfB: versionsOf(tree, n('b')).map((x) => x.checkpoint_id),"
        "  versionsOfA: versionsOf(tree, n('a')).map((x) => x.checkpoint_id),"
        "  tipOfA: tipOf(tree, n('a')).checkpoint_id, tipOfC: tipOf(tree, n('c')).checkpoint_id,"
        "}));"
    )
    assert found == {
        "order": [["a", 1, 1, 0], ["b", 1, 2, 0], ["d", 1, 3, 0], ["c", 2, 2, 1], ["e", 3, 1, 0]],
        "versionsOfB": ["b", "c"],
        "versionsOfA": ["a", "e"],
        "tipOfA": "d",
        "tipOfC": "c",
    }
