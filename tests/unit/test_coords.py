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
