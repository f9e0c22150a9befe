"""What a study tells its user while and after it runs: the live console, the summary and
comparison rows, and reads of a running study."""
