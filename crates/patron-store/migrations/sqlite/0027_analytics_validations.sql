-- Holdout validations of the models (issue 18 §1): each run of `patron validate` on the database
-- or POST /api/v1/analytics/validations keeps its document; the dashboard shows the latest.
CREATE TABLE analytics_validations (
    id                  INTEGER PRIMARY KEY,
    calibration_end_day INTEGER NOT NULL,
    holdout_end_day     INTEGER NOT NULL,
    time_unit           TEXT NOT NULL,
    customers           INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    document            TEXT NOT NULL
);
