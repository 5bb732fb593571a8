"""ML-1M as GroupLens ships it (ml-1m/ratings.dat, "UserID::MovieID::Rating::Timestamp")."""

from rclrec.data.registry import default_max_len, load_dataset, resolve_dataset


def test_ml1m_ratings_dat_is_found_by_name_and_read_as_a_5_core_log(tmp_path):
    rows = []
    # Users 1..5 rate movies 10..14; user u's times are a rotation, written out of order.
    for user in range(1, 6):
        for k, movie in enumerate(range(10, 15)):
            rows.append((user, movie, 1 + (user + k) % 5, 978300000 + ((k + user) % 5) * 60))
    rows.append((1, 99, 5, 978300001))  # movie 99: 2 ratings, dropped by the 5-core filter
    rows.append((2, 99, 3, 978300002))
    rows.reverse()
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows))

    path, fmt = resolve_dataset("ml-1m", data_dir=tmp_path)
    assert path == folder / "ratings.dat" and fmt == "raw"
    ds = load_dataset("ml-1m", data_dir=tmp_path)
    assert ds.name == "ml-1m" and ds.num_items == 5 and len(ds.sequences) == 5
    assert "99" not in ds.item_ids
    for user, seq in zip(ds.user_ids, ds.sequences, strict=True):
        movies = [int(ds.item_ids[i - 1]) for i in seq]
        # Chronological: movie 10 + k at time slot (k + user) mod 5.
        assert movies == sorted(range(10, 15), key=lambda m: (m - 10 + int(user)) % 5)
    assert default_max_len("ml-1m") == 200


def test_ml1m_pairs_file_still_wins_where_both_exist(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text("1::1::5::1\n")
    (tmp_path / "ml-1m.txt").write_text("1 1\n")
    assert resolve_dataset("ml-1m", data_dir=tmp_path)[0] == tmp_path / "ml-1m.txt"
