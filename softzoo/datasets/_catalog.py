"""What each bundled data set is: file, column names, default target, description."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOG", "DatasetInfo"]


@dataclass(frozen=True)
class DatasetInfo:
    """One bundled data set: its columns, default target and default features."""

    name: str
    columns: tuple[str, ...]
    target: str
    description: str
    source: str
    excluded: tuple[str, ...] = ()
    #: the target's unit, where it has one ("MPa"); printed beside its metrics
    unit: str | None = None
    #: the units of other columns that can be a target (randhie's meddol: "USD")
    column_units: tuple[tuple[str, str], ...] = ()

    def unit_of(self, column: str) -> str | None:
        """The unit of ``column`` as a target (None where it has none)."""
        return self.unit if column == self.target else dict(self.column_units).get(column)

    @property
    def file(self) -> str:
        return f"{self.name}.csv.gz"

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != self.target and c not in self.excluded)


_UCI = "UCI Machine Learning Repository, CC BY 4.0"

CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "concrete",
            (
                "cement",
                "blast_furnace_slag",
                "fly_ash",
                "water",
                "superplasticizer",
                "coarse_aggregate",
                "fine_aggregate",
                "age_days",
                "compressive_strength_mpa",
            ),
            "compressive_strength_mpa",
            "Compressive strength (MPa, > 0) of 1030 concrete mixtures from their ingredients "
            "(kg/m³) and age (Yeh, 1998).",
            f"Concrete Compressive Strength, {_UCI}",
            unit="MPa",
        ),
        DatasetInfo(
            "energy",
            (
                "relative_compactness",
                "surface_area",
                "wall_area",
                "roof_area",
                "overall_height",
                "orientation",
                "glazing_area",
                "glazing_area_distribution",
                "heating_load",
            ),
            "heating_load",
            "Heating load (kWh/m², > 0) of 768 simulated buildings from their shape "
            "(Tsanas & Xifara, 2012).",
            f"Energy Efficiency, {_UCI}",
            unit="kWh/m²",
        ),
        DatasetInfo(
            "kin8nm",
            (
                "theta1",
                "theta2",
                "theta3",
                "theta4",
                "theta5",
                "theta6",
                "theta7",
                "theta8",
                "distance",
            ),
            "distance",
            "Distance of the end effector of a simulated 8-link robot arm from a target "
            "(8192 rows; the 'nm' variant: non-linear, medium noise).",
            "kin8nm, DELVE data sets (University of Toronto), via the UCI benchmark suite",
        ),
        DatasetInfo(
            "naval-propulsion-plant",
            (
                "lever_position",
                "ship_speed_knots",
                "gt_shaft_torque",
                "gt_rate_rpm",
                "gg_rate_rpm",
                "starboard_propeller_torque",
                "port_propeller_torque",
                "hp_turbine_exit_temp",
                "compressor_inlet_temp",
                "compressor_outlet_temp",
                "hp_turbine_exit_pressure",
                "compressor_inlet_pressure",
                "compressor_outlet_pressure",
                "exhaust_pressure",
                "turbine_injection_control",
                "fuel_flow",
                "compressor_decay_coef",
                "turbine_decay_coef",
            ),
            "compressor_decay_coef",
            "Gas-turbine compressor decay state coefficient (0.95-1.0) of a simulated frigate "
            "propulsion plant, 11934 rows (Coraddu et al., 2016). turbine_decay_coef is a "
            "second target, excluded from the default features.",
            f"Condition Based Maintenance of Naval Propulsion Plants, {_UCI}",
            excluded=("turbine_decay_coef",),
        ),
        DatasetInfo(
            "power-plant",
            (
                "ambient_temp",
                "exhaust_vacuum",
                "ambient_pressure",
                "relative_humidity",
                "energy_output_mw",
            ),
            "energy_output_mw",
            "Net hourly electrical output (MW, > 0) of a combined-cycle power plant from "
            "ambient conditions, 9568 rows (Tüfekci, 2014).",
            f"Combined Cycle Power Plant, {_UCI}",
            unit="MW",
        ),
        DatasetInfo(
            "protein-tertiary-structure",
            ("f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "rmsd"),
            "rmsd",
            "RMSD (Å, >= 0) of protein structure decoys from nine physico-chemical features "
            "F1-F9, 45730 rows (Rana, 2013).",
            f"Physicochemical Properties of Protein Tertiary Structure, {_UCI}",
            unit="Å",
        ),
        DatasetInfo(
            "wine-quality-red",
            (
                "fixed_acidity",
                "volatile_acidity",
                "citric_acid",
                "residual_sugar",
                "chlorides",
                "free_sulfur_dioxide",
                "total_sulfur_dioxide",
                "density",
                "ph",
                "sulphates",
                "alcohol",
                "quality",
            ),
            "quality",
            "Sensory quality score (0-10, integers 3-8 observed) of 1599 red vinho verde "
            "wines from physico-chemical tests (Cortez et al., 2009).",
            f"Wine Quality, {_UCI}",
        ),
        DatasetInfo(
            "randhie",
            (
                "mdvis",
                "lncoins",
                "idp",
                "lpi",
                "fmde",
                "physlm",
                "disea",
                "hlthg",
                "hlthf",
                "hlthp",
                "time",
                "meddol",
            ),
            "mdvis",
            "Number of outpatient visits to a doctor in a year (a count, 0-77; mean 2.9, "
            "sd 4.5: over-dispersed) of 20190 person-years of the RAND Health Insurance "
            "Experiment, from insurance plan and health status (Cameron & Trivedi, 2005). "
            "Also: meddol, the year's medical spending (USD; 0 for 22 % of the rows, median "
            "35, maximum 39,182: the two-part model's target, Duan et al., 1983) and time, "
            "the share of the year the person was eligible (an exposure); both are excluded "
            "from the default features.",
            "RAND Health Insurance Experiment, public domain (as distributed by statsmodels; "
            "meddol and time from the RandHIE data of the sampleSelection R package)",
            excluded=("time", "meddol"),
            unit="visits",
            column_units=(("meddol", "USD"),),
        ),
        DatasetInfo(
            "yacht",
            (
                "buoyancy_position",
                "prismatic_coefficient",
                "length_displacement_ratio",
                "beam_draught_ratio",
                "length_beam_ratio",
                "froude_number",
                "residuary_resistance",
            ),
            "residuary_resistance",
            "Residuary resistance per unit weight of displacement (> 0) of 308 sailing-yacht "
            "hulls from their shape and speed (Gerritsma et al., 1981; Ortigosa et al., 2007).",
            f"Yacht Hydrodynamics, {_UCI}",
        ),
        DatasetInfo(
            "penguins",
            (
                "species",
                "island",
                "bill_length_mm",
                "bill_depth_mm",
                "flipper_length_mm",
                "body_mass_g",
                "sex",
                "year",
            ),
            "body_mass_g",
            "Body mass (g, > 0) of 344 penguins of three species (Adelie, Chinstrap, Gentoo) "
            "on three islands of the Palmer Archipelago, Antarctica, from their bill and "
            "flipper measurements, sex and year: a real table with text columns (species, "
            "island, sex) and empty cells (Gorman et al., 2014; Horst et al., 2020).",
            "palmerpenguins (Horst, Hill & Gorman, 2020), data CC0 1.0",
            unit="g",
        ),
    ]
}
