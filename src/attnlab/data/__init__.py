"""Reading, tokenising, caching and batching data for every task."""
