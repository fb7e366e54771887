-- docker-compose.yml's PostgreSQL, first start only (docker-entrypoint-initdb.d):
-- the two roles of README "Database roles". arbiter_owner owns the database
-- and runs the migrations; arbiter is the service's login and owns nothing
-- (arbiter migrate grants it what its statements need). The superuser
-- (postgres) is used by neither. Passwords for a local playground only.
CREATE ROLE arbiter_owner LOGIN PASSWORD 'arbiter_owner';
CREATE ROLE arbiter LOGIN PASSWORD 'arbiter';
CREATE DATABASE arbiter OWNER arbiter_owner;
