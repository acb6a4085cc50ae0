import numpy as np

from govops.coords import gcj02_to_wgs84, wgs84_to_gcj02

METRES_PER_DEGREE = 111_320.0


def test_gcj02_offset_in_shanghai_is_a_few_hundred_metres() -> None:
    lon, lat = wgs84_to_gcj02([121.1], [31.15])
    shift_m = np.hypot((lon[0] - 121.1) * METRES_PER_DEGREE * np.cos(np.radians(31.15)), (lat[0] - 31.15) * 111_320)
    assert 300 < shift_m < 700
    # Known value of the public algorithm for Tiananmen (WGS-84 116.391275, 39.906217).
    glon, glat = wgs84_to_gcj02(116.391275, 39.906217)
    assert abs(glon - 116.397515) < 2e-5 and abs(glat - 39.907617) < 2e-5


def test_outside_china_is_unchanged() -> None:
    lon, lat = wgs84_to_gcj02([2.35, -74.0], [48.85, 40.7])
    assert lon.tolist() == [2.35, -74.0] and lat.tolist() == [48.85, 40.7]


def test_inverse_round_trip_is_below_a_centimetre() -> None:
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(73.7, 135.0, 10_000), rng.uniform(18.0, 53.5, 10_000)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    error_m = np.hypot((back_lon - lon) * METRES_PER_DEGREE * np.cos(np.radians(lat)), (back_lat - lat) * 111_320)
    assert error_m.max() < 0.01


# Published vectors. eviltransform's python/test.py: (wgs lat, lng, gcj lat, lng); checked
# there to 6 decimal places, as here.
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]
# wandergis/coordtransform's test/app.js: each function applied to (116.404, 39.915).
COORDTRANSFORM = {
    "bd09togcj02": (116.39762729119315, 39.90865673957631),
    "gcj02tobd09": (116.41036949371029, 39.92133699351021),
    "wgs84togcj02": (116.41024449916938, 39.91640428150164),
}


def test_published_wgs84_to_gcj02_vectors() -> None:
    for wlat, wlng, glat, glng in EVILTRANSFORM:
        lon, lat = wgs84_to_gcj02(wlng, wlat)
        assert abs(lon - glng) < 1e-6 and abs(lat - glat) < 1e-6
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert np.allclose((lon, lat), COORDTRANSFORM["wgs84togcj02"], atol=1e-6, rtol=0)


def test_published_gcj02_bd09_vectors_both_ways() -> None:
    from govops.coords import bd09_to_gcj02, gcj02_to_bd09

    assert np.allclose(gcj02_to_bd09(116.404, 39.915), COORDTRANSFORM["gcj02tobd09"], atol=1e-6, rtol=0)
    assert np.allclose(bd09_to_gcj02(116.404, 39.915), COORDTRANSFORM["bd09togcj02"], atol=1e-6, rtol=0)


def test_every_system_round_trips_below_a_millimetre() -> None:
    from govops.coords import SYSTEMS, distance_m, from_wgs84, to_wgs84

    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(73.7, 135.0, 10_000), rng.uniform(18.0, 53.5, 10_000)
    for system in SYSTEMS:
        back = to_wgs84(*from_wgs84(lon, lat, system), system)
        assert distance_m(lon, lat, *back).max() < 0.001, system
    # BD-09 sits on top of GCJ-02: a few hundred metres more in Shanghai.
    shift = distance_m(*from_wgs84(121.1, 31.15, "GCJ-02"), *from_wgs84(121.1, 31.15, "BD-09"))
    assert 700 < shift < 1300
