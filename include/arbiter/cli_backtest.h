/* `arbiter backtest` (README "Policy backtests"). */
#ifndef ARBITER_CLI_BACKTEST_H
#define ARBITER_CLI_BACKTEST_H

extern const char cli_backtest_usage[];

/* argv[1] is "backtest"; returns the exit status (0 done, 1 failed, 2 usage). */
int cli_backtest(int argc, char **argv);

#endif
