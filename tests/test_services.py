import socket
import threading
import time

import pytest

from netdiag import services
from netdiag.errors import BadInput


def services_file() -> list:
    """An oracle independent of the lookups: the services file itself."""
    with open(services.SERVICES_FILE) as f:
        return list(services.parse_services(f))


def test_name_port_and_protocol_forms_agree_with_the_services_file():
    entries = services_file()
    ssh = {(e.port, e.protocol) for e in entries if e.name == "ssh"}
    assert {(e.port, e.protocol) for e in services.lookup("ssh").entries} == ssh
    assert [(e.port, e.protocol) for e in services.lookup("domain/udp").entries] == [(53, "udp")]
    named_22 = {e.name for e in entries if (e.port, e.protocol) == (22, "tcp")}
    by_port = services.lookup("22/tcp")
    assert [e.protocol for e in by_port.entries] == ["tcp"] and by_port.entries[0].name in named_22


def test_both_protocols_give_one_row_each():
    answer = services.lookup("domain")
    assert sorted(e.protocol for e in answer.entries) == ["tcp", "udp"]
    assert services.lookup("domain", "udp").entries[0].protocol == "udp"


def test_alias_resolves_to_canonical_name_with_aliases():
    www = [e for e in services.database() if "www" in e.aliases and e.protocol == "tcp"]
    if not www:
        pytest.skip("this services database has no www alias")
    answer = services.lookup("www/tcp")
    assert answer.entries[0].name == www[0].name
    assert "www" in answer.entries[0].aliases


@pytest.mark.parametrize("query", ["80/xyz", "70000", "65536/tcp", "-1", "a/b/c", "ssh/", ""])
def test_malformed_queries(query):
    answer = services.lookup(query)
    assert answer.malformed
    assert answer.entries == ()
    assert answer.error


def test_unknown_is_negative_not_malformed():
    answer = services.lookup("no-such-service-xyz")
    assert not answer.malformed
    assert "no service no-such-service-xyz" in answer.error
    assert services.lookup("65000/udp").error  # unassigned port


def test_port_number_accepts_numbers_and_names():
    assert services.port_number("8080") == 8080
    assert services.port_number("smtp") == socket.getservbyname("smtp", "tcp")
    with pytest.raises(BadInput, match="unknown service"):
        services.port_number("no-such-service-xyz")


def test_database_matches_the_services_file():
    from_file = set(services_file())
    assert from_file, "the services file parsed to nothing"
    assert from_file <= set(services.database())


def test_list_is_complete_sorted_filtered_and_fast():
    start = time.perf_counter()
    services.database.cache_clear()
    services._aliases.cache_clear()
    everything = services.list_services()
    assert time.perf_counter() - start < 0.5
    assert len(everything) == len(set(services.database()))
    assert everything == sorted(everything, key=lambda e: (e.port, e.protocol, e.name))
    udp = services.list_services(proto="udp")
    assert udp and all(e.protocol == "udp" for e in udp)
    dom = services.list_services(grep="DOMAIN")
    assert dom and all("domain" in (e.name + " ".join(e.aliases)).lower() for e in dom)


def test_thread_safe_under_contention():
    queries = ["ssh", "domain", "22", "53/udp", "smtp", "http", "80", "443/tcp"]
    expected = {q: services.lookup(q) for q in queries}
    wrong = []

    def hammer():
        for _ in range(300):
            for q in queries:
                if services.lookup(q) != expected[q]:
                    wrong.append(q)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
