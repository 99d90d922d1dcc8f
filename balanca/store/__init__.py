"""The store: readings and weighings in SQLite or MySQL/MariaDB through adbapi."""
