from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import (
    ApiConfig,
    BotConfig,
    ConfigError,
    EndpointsConfig,
    EngineConfig,
    StrategyConfig,
    TimeoutsConfig,
    load,
    loads,
)

MINIMAL = """
deployment = "deployment.json"
[endpoints]
http = ["http://127.0.0.1:8545"]
"""

FULL = """
deployment = "run/deployment.json"
pairs = ["T000/USD", "T001/USD"]
loop = "asyncio"
json = "json"

[endpoints]
http = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
ws = "ws://127.0.0.1:8545"

[accounts]
source = "anvil-dev:4"

[strategy]
trade_size = 5000000000000000000
deadband_bps = 25
max_slippage_bps = 50.5

[engine]
mailbox_size = 128
dispatch_slots = 32
max_in_flight = 64
rpc_concurrency = 16
signing = "process"
workers = 2

[timeouts]
connect = 1
read = 5
total = 10
confirm = 20

[api]
host = "127.0.0.1"
port = 9000
token_env = "MY_TOKEN"

[feed]
url = "ws://127.0.0.1:9100/ticks"

[telemetry]
interval_s = 0.5
keep = 120
"""


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = loads(MINIMAL, base_dir=tmp_path)
    assert cfg.deployment == (tmp_path / "deployment.json").resolve()
    assert cfg.endpoints == EndpointsConfig(http=("http://127.0.0.1:8545",), ws=None)
    assert cfg.pairs == "all"
    assert cfg.api == ApiConfig()
    assert cfg.api.host == "127.0.0.1"
    assert cfg.engine == EngineConfig()
    assert cfg.accounts.dev_count == 1
    assert (cfg.loop, cfg.json) == ("uvloop", "orjson")


def test_full_config(tmp_path: Path) -> None:
    cfg = loads(FULL, base_dir=tmp_path)
    assert cfg.deployment == (tmp_path / "run" / "deployment.json").resolve()
    assert cfg.pairs == ("T000/USD", "T001/USD")
    assert cfg.endpoints.ws == "ws://127.0.0.1:8545"
    assert cfg.accounts.dev_count == 4
    assert cfg.strategy == StrategyConfig(trade_size=5 * 10**18, deadband_bps=25.0, max_slippage_bps=50.5)
    assert cfg.engine.signing == "process" and cfg.engine.rpc_concurrency == 16
    assert cfg.timeouts == TimeoutsConfig(connect=1.0, read=5.0, total=10.0, confirm=20.0)
    assert cfg.api == ApiConfig(port=9000, token_env="MY_TOKEN")
    assert cfg.feed.url == "ws://127.0.0.1:9100/ticks"
    assert (cfg.telemetry.interval_s, cfg.telemetry.keep) == (0.5, 120)
    assert (cfg.loop, cfg.json) == ("asyncio", "json")


def test_load_from_file_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "bot.toml").write_text(MINIMAL + '\n[accounts]\nkey_file = "keys.txt"\n')
    cfg = load(tmp_path / "bot.toml")
    assert cfg.accounts.key_file == (tmp_path / "keys.txt").resolve()
    assert cfg.accounts.source is None


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*--config"):
        load(tmp_path / "nope.toml")


def test_error_from_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bot.toml").write_text(MINIMAL + "\n[api]\nport = 0\n")
    with pytest.raises(ConfigError, match=r"bot\.toml: api\.port"):
        load(tmp_path / "bot.toml")


BAD: list[tuple[str, str]] = [
    ('[api]\nport = "abc"', r"^api\.port: expected an integer 1-65535, got 'abc'$"),
    ("[api]\nport = 70000", r"^api\.port: expected an integer 1-65535, got 70000$"),
    ("[api]\nport = true", r"^api\.port: expected an integer"),
    ('[api]\nhost = "0.0.0.0"', r"^api\.host: .*loopback only"),
    ('[api]\nhost = "10.0.0.5"', r"^api\.host: .*loopback only"),
    ('[api]\ntoken_env = "has space"', r"^api\.token_env: expected an environment variable name"),
    ("[api]\nprot = 1", r"^api\.prot: unknown key; did you mean 'port'\?$"),
    ('[engine]\nsigning = "gpu"', r"^engine\.signing: expected one of 'inline', 'thread', 'process', got 'gpu'$"),
    ("[engine]\nmailbox_size = 0", r"^engine\.mailbox_size: expected an integer 1-1000000, got 0$"),
    ("[engine]\nworkers = 1.5", r"^engine\.workers: expected an integer"),
    ("[engine]\nmax_inflight = 3", r"^engine\.max_inflight: unknown key; did you mean 'max_in_flight'\?$"),
    ("[engine]\nmax_retry_after = 0", r"^engine\.max_retry_after: expected seconds > 0 and <= 3600, got 0; "
                                       r"it caps how long one HTTP 429's Retry-After may park an endpoint"),
    ("[engine]\nmax_retry_after = 86400", r"^engine\.max_retry_after: expected seconds > 0 and <= 3600"),
    ("[engine]\nconflate_trades = 1", r"^engine\.conflate_trades: expected true or false, got 1$"),
    ("[timeouts]\nconnect = -1", r"^timeouts\.connect: expected a number > 0"),
    ("[timeouts]\nread = 0", r"^timeouts\.read: expected a number > 0"),
    ("[timeouts]\nconnect = 20\ntotal = 10", r"^timeouts\.total: must be at least timeouts\.connect"),
    ("[timeouts]\nsubmit = nan", r"^timeouts\.submit: expected a number"),
    ("[strategy]\ntrade_size = -5", r"^strategy\.trade_size: expected a positive integer amount in wei"),
    ("[strategy]\ntrade_size = 0.5", r"^strategy\.trade_size: expected a positive integer"),
    ("[strategy]\ndeadband_bps = 10000", r"^strategy\.deadband_bps: expected a number >= 0 and < 10000"),
    ('[accounts]\nsource = "anvil-dev:0"', r"^accounts\.source: expected 'anvil-dev:N'"),
    ('[accounts]\nsource = "mainnet"', r"^accounts\.source: expected 'anvil-dev:N'"),
    ('[accounts]\nsource = "anvil-dev:2"\nenv = "K"', r"^accounts: give exactly one of source, env, key_file"),
    ('[accounts]\nenv = "1BAD"', r"^accounts\.env: expected an environment variable name"),
    ('[accounts]\nkeys = "0xabc"', r"^accounts\.keys: unknown key"),
    ('[feed]\nurl = "http://127.0.0.1:9100"', r"^feed\.url: expected a ws/wss URL"),
    ('[telemetry]\nkeep = 0', r"^telemetry\.keep: expected an integer 1-1000000, got 0$"),
    ("[telemetry]\ninterval_s = 0", r"^telemetry\.interval_s: expected a number >= 0.01"),
    ("[typo_section]\nx = 1", r"^typo_section: unknown key"),
    ("api = 3", r"^api: expected a table"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_values_name_field_and_fix(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads(extra + "\n" + MINIMAL if not extra.startswith("[") else MINIMAL + "\n" + extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[endpoints]\nhttp = ["http://127.0.0.1:8545"]', r"^deployment: required"),
        ('deployment = "d.json"', r"^endpoints\.http: required"),
        ('deployment = "d.json"\n[endpoints]\nws = "ws://127.0.0.1:1"', r"^endpoints\.http: required"),
        ('deployment = "d.json"\n[endpoints]\nhttp = []', r"^endpoints\.http: expected a non-empty list"),
        ('deployment = "d.json"\n[endpoints]\nhttp = ["ftp://x"]', r"^endpoints\.http\[0\]: expected a http/https URL"),
        ('deployment = "d.json"\n[endpoints]\nhttp = ["http://h:port"]', r"^endpoints\.http\[0\]: the port"),
        ('deployment = "d.json"\n[endpoints]\nhttp = ["http://a:1", "http://a:1"]', r"same URL twice"),
        ('deployment = "d.json"\n[endpoints]\nhttp = ["http://a:1"]\nws = "http://a:1"',
         r"^endpoints\.ws: expected a ws/wss URL"),
        ('deployment = "d.json"\npairs = []\n[endpoints]\nhttp = ["http://a:1"]', r"^pairs: expected \"all\""),
        ('deployment = "d.json"\npairs = ["A", "A"]\n[endpoints]\nhttp = ["http://a:1"]',
         r"^pairs: 'A' is listed twice"),
        ('deployment = "d.json"\npairs = ["A", 3]\n[endpoints]\nhttp = ["http://a:1"]',
         r"^pairs\[1\]: expected a pair id"),
        ('deployment = "d.json"\nloop = "trio"\n[endpoints]\nhttp = ["http://a:1"]', r"^loop: expected one of"),
        ('deployment = = 1', r"^bot\.toml is not valid TOML"),
    ],
)
def test_structural_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads(text)


def test_single_http_string_is_accepted_and_big_trade_size_as_string() -> None:
    cfg = loads('deployment = "d.json"\n[endpoints]\nhttp = "https://node.example:443"\n'
                f'[strategy]\ntrade_size = "{2**70}"\n')
    assert cfg.endpoints.http == ("https://node.example:443",)
    assert cfg.strategy.trade_size == 2**70


def test_api_token_comes_from_environment_only() -> None:
    cfg = loads(MINIMAL)
    assert cfg.api.token({}) is None
    assert cfg.api.token({"BOT_API_TOKEN": ""}) is None
    assert cfg.api.token({"BOT_API_TOKEN": "s3cret"}) == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.to_dict())


def test_anvil_dev_accounts_derive_the_well_known_keys() -> None:
    accounts = loads(MINIMAL + '\n[accounts]\nsource = "anvil-dev:2"\n').accounts.load()
    assert [a.address for a in accounts] == [
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ]


def test_env_accounts_load_and_missing_env_is_clear() -> None:
    from bot.chain.accounts import AccountLoadError

    cfg = loads(MINIMAL + '\n[accounts]\nenv = "MY_KEYS"\n')
    key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    (acc,) = cfg.accounts.load({"MY_KEYS": key})
    assert acc.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(AccountLoadError, match="MY_KEYS"):
        cfg.accounts.load({})


def test_to_toml_round_trips(tmp_path: Path) -> None:
    cfg = loads(FULL, base_dir=tmp_path)
    again = loads(cfg.to_toml(), base_dir="/somewhere/else")
    assert again == cfg


@settings(max_examples=40, deadline=None)
@given(
    port=st.integers(1, 65535),
    mailbox=st.integers(1, 1_000_000),
    signing=st.sampled_from(["inline", "thread", "process"]),
    timeout=st.floats(0.001, 3599, allow_nan=False),
    pairs=st.one_of(st.just("all"), st.lists(st.text("ABCT0123/", min_size=1, max_size=9), min_size=1,
                                                unique=True).map(tuple)),
    deadband=st.floats(0, 9999.99, allow_nan=False),
)
def test_any_valid_config_round_trips(
    *, port: int, mailbox: int, signing: str, timeout: float, pairs: str | tuple[str, ...], deadband: float
) -> None:
    cfg = BotConfig(
        deployment=Path("/tmp/d.json"),
        pairs=pairs,  # type: ignore[arg-type]
        api=ApiConfig(port=port),
        engine=EngineConfig(mailbox_size=mailbox, signing=signing),  # type: ignore[arg-type]
        timeouts=TimeoutsConfig(confirm=timeout, handler=timeout),
        strategy=StrategyConfig(deadband_bps=deadband),
    )
    assert loads(cfg.to_toml()) == cfg


def test_max_retry_after_is_read_and_defaults_to_five_seconds() -> None:
    assert loads(MINIMAL).engine.max_retry_after == 5.0
    assert loads(MINIMAL + "\n[engine]\nmax_retry_after = 2.5\n").engine.max_retry_after == 2.5


def test_debug_leak_bytes_per_trade_defaults_off_and_is_validated() -> None:
    assert loads(MINIMAL).debug.leak_bytes_per_trade == 0
    cfg = loads(MINIMAL + "[debug]\nleak_bytes_per_trade = 65536\n")
    assert cfg.debug.leak_bytes_per_trade == 65536
    assert loads(cfg.to_toml()).debug.leak_bytes_per_trade == 65536  # written to bot.toml and read back
    for bad in ("-1", "1.5", "true", '"64k"', str(16 * 2**20 + 1)):
        with pytest.raises(ConfigError, match=r"debug\.leak_bytes_per_trade: expected an integer number of bytes"):
            loads(MINIMAL + f"[debug]\nleak_bytes_per_trade = {bad}\n")
    with pytest.raises(ConfigError, match=r"debug\.leak_byte: unknown key; did you mean 'leak_bytes_per_trade'"):
        loads(MINIMAL + "[debug]\nleak_byte = 1\n")


def test_a_planted_leak_keeps_resident_bytes_per_trade() -> None:
    from bot.debug import PlantedLeak

    leak = PlantedLeak(4096)
    for _ in range(3):
        leak.keep()
    s = leak.statistics()
    assert (s.bytes_per_trade, s.trades, s.held_bytes) == (4096, 3, 12288)
    with pytest.raises(ValueError, match="bytes_per_trade"):
        PlantedLeak(0)
