"""Scale-out: several nodes share fan-out through a broker and state through a shared store with expiry."""
