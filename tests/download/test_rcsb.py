"""RCSB search API and holdings service, answered by the loopback server."""

from __future__ import annotations

import json

import pytest

from dplm2.cli import main
from dplm2.download.config import HttpConfig, SearchConfig
from dplm2.download.fetch import Fetcher
from dplm2.download.ids import rcsb_holdings, rcsb_search

HITS = ["1AKI", "4HHB", "1L2Y"]


def _search(handler, body):
    page = body["request_options"]["paginate"]
    hits = HITS[page["start"] : page["start"] + page["rows"]]
    result = {"total_count": len(HITS), "result_set": [{"identifier": h, "score": 1} for h in hits]}
    return 200, json.dumps(result).encode()


def _terminals(body):
    return {
        (n["parameters"]["attribute"], n["parameters"]["operator"]): n["parameters"]["value"]
        for n in body["query"]["nodes"]
    }


def test_search_sends_filters_and_pages(server):
    server.routes["/search"] = _search
    server.faults["/search"] = ["500"]  # retried
    cfg = SearchConfig.from_dict(dict(
        url=f"{server.url}/search",
        resolution_max=2.5,
        methods=["X-RAY DIFFRACTION"],
        release_date_max="2021-12-31",
        release_date_min="2000-01-01",
        page_size=2,
    ))
    fetcher = Fetcher(HttpConfig.from_dict(dict(retries=2, backoff=0.01)), sleep=lambda s: None)
    ids = rcsb_search(cfg, fetcher.post_json)
    assert ids == ["1aki", "4hhb", "1l2y"]
    assert len(server.bodies) == 3  # failed attempt + two pages
    body = server.bodies[-1]
    assert body["return_type"] == "entry"
    assert body["request_options"]["paginate"] == {"start": 2, "rows": 2}
    terms = _terminals(body)
    assert terms[("rcsb_entry_info.resolution_combined", "less_or_equal")] == 2.5
    assert terms[("exptl.method", "in")] == ["X-RAY DIFFRACTION"]
    assert terms[("rcsb_accession_info.initial_release_date", "less_or_equal")] == "2021-12-31"
    assert terms[("rcsb_accession_info.initial_release_date", "greater_or_equal")] == "2000-01-01"
    assert terms[("entity_poly.rcsb_entity_polymer_type", "exact_match")] == "Protein"


def test_search_no_hits_and_bad_answer(server):
    server.routes["/empty"] = lambda h, b: (204, b"")
    server.routes["/bad"] = lambda h, b: (200, b"<html>")
    fetcher = Fetcher(HttpConfig.from_dict(dict(retries=0)))
    assert rcsb_search(SearchConfig.from_dict(dict(url=f"{server.url}/empty")), fetcher.post_json) == []
    with pytest.raises(ValueError, match="unexpected search response"):
        rcsb_search(SearchConfig.from_dict(dict(url=f"{server.url}/bad")), fetcher.post_json)


def test_holdings_and_cli_ids(server, tmp_path):
    server.routes["/holdings"] = lambda h, b: (200, json.dumps(["4HHB", "1AKI", "1aki"]).encode())
    fetcher = Fetcher(HttpConfig.from_dict(dict(retries=0)))
    assert rcsb_holdings(f"{server.url}/holdings", fetcher.get_bytes) == ["1aki", "4hhb"]
    server.routes["/evil"] = lambda h, b: (200, json.dumps(["1aki", "../x"]).encode())
    with pytest.raises(ValueError, match="invalid PDB id"):
        rcsb_holdings(f"{server.url}/evil", fetcher.get_bytes)

    # The `ids` command uses the search answer (and max_ids) to write the ID list.
    server.routes["/search"] = _search
    search = {"url": f"{server.url}/search"}
    params = json.dumps({"pdb": {"id_source": "search", "max_ids": 2, "search": search}})
    out = tmp_path / "ids.txt"
    rc = main(["download", "ids", "--source", "pdb", "--output", str(out), "--params", params])
    assert rc == 0
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["1aki", "4hhb"]
