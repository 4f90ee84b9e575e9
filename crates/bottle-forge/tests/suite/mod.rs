mod forges;
