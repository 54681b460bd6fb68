"""chalicelib.ids.new_id: random ids over a 32-character alphabet, 5 bits each."""


def test_new_ids_use_every_character_of_the_alphabet_evenly_at_every_length():
    import collections
    from chalicelib.ids import _ALPHABET, new_id
    for length in (1, 8, 16, 20, 33):
        ids = [new_id("x", length) for _ in range(400)]
        assert all(len(i) == length + 2 and i.startswith("x_") and set(i[2:]) <= set(_ALPHABET) for i in ids)
    seen = collections.Counter("".join(new_id("x", 20)[2:] for _ in range(3200)))
    assert set(seen) == set(_ALPHABET)
    assert max(seen.values()) < 1.3 * min(seen.values())        # 2,000 expected each; far from this by chance
