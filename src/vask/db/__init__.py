"""What the app and billing stores share: one connection to SQLite or PostgreSQL, and versioned migrations."""
