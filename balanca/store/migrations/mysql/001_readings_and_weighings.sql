-- Readings and weighings (MySQL/MariaDB). DECIMAL(18,6) pads to 6 decimals, so the scale's
-- own number of decimals is kept beside each weight. Times are UTC with the offset in seconds.
-- MySQL commits each DDL statement by itself: every statement here must be safe to run twice
-- (IF NOT EXISTS, guarded ALTERs), since a migration cut half-way is run again from the top.

CREATE TABLE IF NOT EXISTS readings (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    scale VARCHAR(64) NOT NULL,
    run VARCHAR(40) NOT NULL,
    seq BIGINT NOT NULL,
    time DATETIME(6) NOT NULL,
    utc_offset INT NOT NULL,
    source VARCHAR(16) NOT NULL,
    weight DECIMAL(18,6) NULL,
    weight_decimals TINYINT NULL,
    unit VARCHAR(16) NOT NULL,
    stable BOOLEAN NOT NULL,
    mode VARCHAR(8) NOT NULL,
    tare DECIMAL(18,6) NULL,
    tare_decimals TINYINT NULL,
    status VARCHAR(16) NOT NULL,
    UNIQUE KEY readings_scale_run_seq (scale, run, seq),
    KEY readings_scale_time (scale, time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS weighings (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uid CHAR(32) NOT NULL,
    scale VARCHAR(64) NOT NULL,
    run VARCHAR(40) NOT NULL,
    seq BIGINT NOT NULL,
    time DATETIME(6) NOT NULL,
    utc_offset INT NOT NULL,
    weight DECIMAL(18,6) NOT NULL,
    weight_decimals TINYINT NOT NULL,
    unit VARCHAR(16) NOT NULL,
    mode VARCHAR(8) NOT NULL,
    tare DECIMAL(18,6) NULL,
    tare_decimals TINYINT NULL,
    reference VARCHAR(255) NULL,
    note TEXT NULL,
    UNIQUE KEY weighings_uid (uid),
    KEY weighings_scale_id (scale, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
