"""The shared filter set: presets, comparison periods, and the URL round trip."""

from datetime import date

from cx.filters import Filters

KNOWN = {"channel": ["web", "app", "email"], "region": ["Europe", "APAC"]}


def test_presets_anchor_on_the_last_date_in_the_data():
    first, last = date(2023, 1, 10), date(2024, 5, 15)
    assert Filters(preset="last_30").resolved(first, last) == Filters("last_30", date(2024, 4, 16), last)
    assert Filters(preset="last_90").resolved(first, last).start == date(2024, 2, 16)
    assert Filters(preset="qtd").resolved(first, last).start == date(2024, 4, 1)
    assert Filters(preset="ytd").resolved(first, last).start == date(2024, 1, 1)
    assert Filters(preset="all").resolved(first, last).start == first
    assert Filters().preset == "last_90"
    # An empty store has no range at all.
    assert Filters(preset="last_30").resolved(None, None).start is None


def test_previous_period_has_the_same_length_just_before():
    f = Filters("custom", date(2024, 3, 1), date(2024, 3, 31))  # 31 days
    assert f.comparison() == (date(2024, 1, 30), date(2024, 2, 29))


def test_same_period_last_year_handles_the_leap_day():
    f = Filters("custom", date(2024, 2, 1), date(2024, 2, 29), compare="year")
    assert f.comparison() == (date(2023, 2, 1), date(2023, 2, 28))


def test_query_params_round_trip_reproduces_the_view():
    f = Filters("custom", date(2024, 3, 1), date(2024, 3, 31), compare="year").with_dim("channel", ["web", "app"])
    params = f.to_query_params()
    assert params == {"range": "custom", "from": "2024-03-01", "to": "2024-03-31", "compare": "year",
                      "f.channel": ["app", "web"]}
    back, notices = Filters.from_query_params(params, KNOWN)
    assert back == f and notices == []


def test_invalid_url_values_are_ignored_with_a_notice():
    params = {"range": "forever", "compare": "decade", "f.channel": ["web", "fax"], "f.planet": "Mars",
              "f.region": "'; DROP TABLE responses; --"}
    f, notices = Filters.from_query_params(params, KNOWN)
    assert f == Filters(dims=(("channel", ("web",)),))
    assert len(notices) == 5
    assert any("fax" in n for n in notices) and any("planet" in n for n in notices)


def test_bad_custom_dates_fall_back_to_all_time():
    f, notices = Filters.from_query_params({"range": "custom", "from": "2024-05-01", "to": "2024-04-01"}, KNOWN)
    assert f.preset == "last_90" and f.start is None and len(notices) == 1


def _dims_store(tmp_path):
    from cx.store import Store

    s = Store(tmp_path / "dims.duckdb")
    with s.cursor() as cur:
        # channel in two tables: web 3 + 1 = 4, app 2 + 2 = 4 (a tie: alphabetical), email 1; NULLs never count.
        for i, (ch, seg) in enumerate([("web", "SMB"), ("web", "SMB"), ("web", None), ("app", "SMB"), ("app", "Ent"),
                                       ("email", None), (None, "Ent")]):
            cur.execute("INSERT INTO responses (response_id, submitted_at, channel, segment, batch_id, row_hash) "
                        "VALUES (?, TIMESTAMP '2024-01-01', ?, ?, 1, 'h')", [f"r{i}", ch, seg])
        for i, ch in enumerate(["web", "app", "app", None]):
            cur.execute("INSERT INTO orders (order_id, customer_id, ordered_at, channel, status, batch_id, row_hash) "
                        "VALUES (?, 'c', TIMESTAMP '2024-01-01', ?, 'paid', 1, 'h')", [f"o{i}", ch])
        cur.execute("UPDATE meta SET data_version = data_version + 1")
    return s


def test_dimension_values_count_across_tables_most_frequent_first(tmp_path):
    from cx.filters import dimension_values

    s = _dims_store(tmp_path)
    # status is a column of orders but not a filter; dimensions without values are left out.
    assert dimension_values(s) == {"channel": ["app", "web", "email"], "segment": ["SMB", "Ent"]}
    s.close()


def test_dimension_values_are_kept_until_the_data_version_changes(tmp_path):
    from cx.filters import dimension_values

    s = _dims_store(tmp_path)
    first = dimension_values(s)
    with s.cursor() as cur:
        cur.execute("INSERT INTO responses (response_id, submitted_at, channel, batch_id, row_hash) "
                    "VALUES ('x', TIMESTAMP '2024-01-02', 'phone', 1, 'h')")
    assert dimension_values(s) == first  # same data version: the kept answer
    with s.cursor() as cur:
        cur.execute("UPDATE meta SET data_version = data_version + 1")
    assert dimension_values(s)["channel"] == ["app", "web", "email", "phone"]
    s.close()


def test_dimension_values_keep_at_most_the_limit_per_dimension(tmp_path, monkeypatch):
    from cx import filters

    monkeypatch.setattr(filters, "MAX_VALUES_PER_DIMENSION", 2)
    s = _dims_store(tmp_path)
    assert filters.dimension_values(s)["channel"] == ["app", "web"]
    s.close()
