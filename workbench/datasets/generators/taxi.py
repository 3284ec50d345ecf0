"""City taxi trips: a tabular ML dataset with learnable, documented relationships.

A synthetic city of ``zones`` zones (ids 1..zones) whose centres lie in a dense core and a
wider ring; zones 1 and 2 are airports about 15 km out. Each trip, independently:

* pickup time: day of year weighted by weekday (Friday busiest, Sunday quietest) and a
  slow seasonal wave; hour from a weekday profile (7-9 and 17-20 peaks) or a weekend one
  (late nights); the second uniform within the hour. Start: 2024-01-01 (a Monday).
* pickup zone by zone popularity; dropoff zone by a gravity model, popularity x
  exp(-distance / 4 km).
* trip_distance (miles): distance between jittered points of the two zones times a
  log-normal detour factor (median 1.3), at least 0.1 mile.
* duration: distance / speed, speed by hour (rush hours slow, nights fast), faster on long
  trips, log-normal noise; plus a minute at the kerb. dropoff = pickup + duration.
* fare_amount: 3.00 + 2.50/mile + 0.60/minute + 2.50 weekday 16-20h + 1.00 at night
  (20-6h) + 5.00 to or from an airport, times log-normal noise (sd 5%), plus N(0, 0.5).
* payment_type: card (more likely for long trips, less for groups), cash, no_charge, dispute.
* tip_amount: card trips only (cash tips are not recorded, as in real taxi records):
  tipped with logistic odds rising with fare and airport trips, falling at night and for
  groups; 15/20/25/30% of the fare. tipped = tip_amount > 0.
* total_amount = fare + tip + 1.50 of fixed surcharges (it contains the tip: drop it
  when predicting tips).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workbench.datasets.generators._rng import blocks, rng, stream_id
from workbench.datasets.generators._table import TablePlan, arrow, assemble

START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00 in microseconds since the epoch
DAY_US = 86_400_000_000
WEEKDAY = np.array([0.94, 1.0, 1.03, 1.08, 1.12, 1.06, 0.88])  # Monday first
HOURS_WEEKDAY = np.array(
    [1.5, 0.9, 0.6, 0.4, 0.4, 0.6, 1.6, 3.0, 3.8, 3.6, 3.4, 3.5, 3.7, 3.7, 3.9, 3.8, 3.6, 4.3, 5.0, 4.8, 4.3, 4.2, 3.8, 2.7]
)
HOURS_WEEKEND = np.array(
    [3.5, 3.0, 2.4, 1.8, 1.2, 0.7, 0.7, 1.0, 1.5, 2.2, 2.9, 3.4, 3.7, 3.8, 3.8, 3.7, 3.6, 3.7, 3.9, 3.9, 3.7, 3.7, 3.8, 3.8]
)
# mph by hour on weekdays; weekends use the night/midday values without the peaks
SPEED_WEEKDAY = np.array(
    [19, 20, 21, 21, 20, 18, 14, 10, 8.5, 9, 10, 10.5, 10.5, 10.5, 10, 9.5, 9, 8, 8, 9, 11, 13, 15, 17]
)
SPEED_WEEKEND = np.array(
    [18, 19, 20, 21, 21, 21, 19, 17, 15, 13, 12, 11, 11, 11, 11, 11, 11, 11, 11.5, 12, 13, 14, 15, 16]
)
PAYMENTS = pa.array(["card", "cash", "no_charge", "dispute"])
PASSENGERS = np.array([0.70, 0.14, 0.05, 0.03, 0.05, 0.03])
AIRPORTS = (1, 2)
KM_PER_MILE = 1.609344
_DTYPES = {
    "pickup": "int64", "dropoff": "int64", "pickup_zone": "int16", "dropoff_zone": "int16",
    "passenger_count": "int8", "trip_distance": "float64", "fare_amount": "float64",
    "payment_type": "int8", "tip_amount": "float64", "total_amount": "float64", "tipped": "bool",
}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


class City:
    """The zones (centres, popularity) and the gravity model, fixed by the seed alone."""

    def __init__(self, seed: int, zones: int):
        gen = rng(seed, stream_id("taxi"), 1, zones)
        core = gen.random(zones) < 0.45
        spread = np.where(core, 1.8, 7.0)
        self.xy = gen.normal(0, 1, (zones, 2)) * spread[:, None]
        self.xy[0], self.xy[1] = (14.0, -9.0), (9.0, 11.0)  # the airports
        pop = gen.lognormal(0, 1.0, zones) * np.where(core, 3.0, 1.0)
        pop[0], pop[1] = pop.max() * 0.8, pop.max() * 0.5
        self.pickup_cdf = np.cumsum(pop / pop.sum())
        self.pickup_cdf[-1] = 1.0
        dist = np.hypot(*(self.xy[:, None, :] - self.xy[None, :, :]).transpose(2, 0, 1))
        w = pop[None, :] * np.exp(-dist / 4.0)
        cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
        cdf[:, -1] = 1.0
        self.zones = zones
        self.flat_cdf = (cdf + np.arange(zones)[:, None]).ravel()  # row i shifted into [i, i+1]

    def dropoff(self, pickup0: np.ndarray, u: np.ndarray) -> np.ndarray:
        """0-based dropoff zones for 0-based pickup zones (one searchsorted for all rows)."""
        flat = np.searchsorted(self.flat_cdf, pickup0 + u, side="right")
        return np.minimum(flat - pickup0 * self.zones, self.zones - 1)


class Taxi(TablePlan):
    def __init__(self, rows: int, seed: int, zones: int = 263, days: int = 365):
        self.rows, self.seed, self.zones, self.days = rows, seed, zones, days
        self.stream = stream_id("taxi")
        self.city = City(seed, zones)
        day = np.arange(days)
        w = WEEKDAY[day % 7] * (1 + 0.08 * np.sin(2 * np.pi * (day - 60) / 365))
        self.day_cdf = np.cumsum(w / w.sum())
        self.day_cdf[-1] = 1.0
        hw, he = np.cumsum(HOURS_WEEKDAY / HOURS_WEEKDAY.sum()), np.cumsum(HOURS_WEEKEND / HOURS_WEEKEND.sum())
        hw[-1] = he[-1] = 1.0
        self.hour_cdf = np.concatenate([hw, he + 1])
        ts = pa.timestamp("us")
        self.schema = pa.schema([
            ("pickup_datetime", ts), ("dropoff_datetime", ts), ("pickup_zone", pa.int16()),
            ("dropoff_zone", pa.int16()), ("passenger_count", pa.int8()), ("trip_distance", pa.float64()),
            ("fare_amount", pa.float64()), ("payment_type", pa.dictionary(pa.int8(), pa.string())),
            ("tip_amount", pa.float64()), ("total_amount", pa.float64()), ("tipped", pa.bool_()),
        ])
        self.dictionary_columns = ("pickup_zone", "dropoff_zone", "passenger_count", "payment_type")
        self.bytes_per_row = 120

    def _block(self, b: int, lo: int, hi: int):
        n, g, city = hi - lo, rng(self.seed, self.stream, 0, b), self.city
        day = np.searchsorted(self.day_cdf, g.random(n), side="right").clip(0, self.days - 1)
        weekend = (day % 7 >= 5).astype(np.int64)
        hour = np.searchsorted(self.hour_cdf, g.random(n) + weekend, side="right") - 24 * weekend
        hour = hour.clip(0, 23)
        pickup = START_US + day * DAY_US + hour * 3_600_000_000 + g.integers(0, 3_600_000_000, n)
        pz = np.searchsorted(city.pickup_cdf, g.random(n), side="right").clip(0, self.zones - 1)
        dz = city.dropoff(pz, g.random(n))
        jitter = g.normal(0, 0.7, (n, 2)) - g.normal(0, 0.7, (n, 2))
        km = np.hypot(*(city.xy[dz] - city.xy[pz] + jitter).T)
        miles = np.maximum(0.1, km * g.lognormal(np.log(1.3), 0.12, n) / KM_PER_MILE).round(2)
        speed = np.where(weekend == 1, SPEED_WEEKEND[hour], SPEED_WEEKDAY[hour])
        speed = speed * (1 + 0.25 * np.log1p(miles / 5)) * g.lognormal(0, 0.2, n)
        minutes = miles / speed * 60 + 1
        dropoff = pickup + (minutes * 60e6).astype(np.int64)
        airport = np.isin(pz, [a - 1 for a in AIRPORTS]) | np.isin(dz, [a - 1 for a in AIRPORTS])
        rush = (weekend == 0) & (hour >= 16) & (hour < 20)
        night = (hour >= 20) | (hour < 6)
        fare = 3.0 + 2.5 * miles + 0.6 * minutes + 2.5 * rush + 1.0 * night + 5.0 * airport
        fare = np.maximum(3.0, fare * g.lognormal(0, 0.05, n) + g.normal(0, 0.5, n)).round(2)
        passengers = (np.searchsorted(np.cumsum(PASSENGERS), g.random(n), side="right").clip(0, 5) + 1)
        p_card = _sigmoid(0.6 + 0.12 * miles - 0.5 * (passengers >= 3) + 0.8 * airport)
        u = g.random(n)
        payment = np.where(u < p_card, 0, 1)
        payment = np.where(u > 0.995, 2, np.where(u > 0.992, 3, payment)).astype(np.int8)
        late = (hour >= 0) & (hour < 5)
        p_tip = _sigmoid(0.3 + 0.06 * fare - 0.5 * (passengers >= 3) + 0.7 * airport - 0.9 * late + 0.3 * weekend)
        tipped = (payment == 0) & (g.random(n) < p_tip)
        pct = np.array([0.15, 0.20, 0.25, 0.30])[np.searchsorted([0.2, 0.65, 0.9], g.random(n), side="right")]
        tip = np.where(tipped, (fare * pct).round(2), 0.0)
        cols = {
            "pickup": pickup, "dropoff": dropoff, "pickup_zone": pz + 1, "dropoff_zone": dz + 1,
            "passenger_count": passengers, "trip_distance": miles, "fare_amount": fare, "payment_type": payment,
            "tip_amount": tip, "total_amount": (fare + tip + 1.5).round(2), "tipped": tipped,
        }
        return lo, {c: (v, None) for c, v in cols.items()}

    def generate(self, start: int, stop: int) -> pa.Table:
        self.check_range(start, stop)
        pieces = (self._block(b, lo, hi) for b, lo, hi in blocks(start, stop, self.rows))
        cols = {c: v for c, (v, _) in assemble(start, stop, pieces, _DTYPES).items()}
        ts = pa.timestamp("us")
        out = [
            arrow(cols["pickup"], None, ts), arrow(cols["dropoff"], None, ts),
            *(arrow(cols[c], None)
              for c in ("pickup_zone", "dropoff_zone", "passenger_count", "trip_distance", "fare_amount")),
            pa.DictionaryArray.from_arrays(cols["payment_type"], PAYMENTS),
            *(arrow(cols[c], None) for c in ("tip_amount", "total_amount", "tipped")),
        ]
        return pa.Table.from_arrays(out, schema=self.schema)


def label(rows: int, zones: int, days: int) -> str:
    from workbench.datasets.generators.h2o import sci

    return f"taxi_{sci(rows)}_z{zones}_d{days}"


def plan(rows: int, seed: int, zones: int = 263, days: int = 365) -> dict[str, TablePlan]:
    return {"data": Taxi(rows, seed, zones=zones, days=days)}
