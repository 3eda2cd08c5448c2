"""The smallest @hydra.main app: the start-up floor `python -m runner --cfg job` is held to."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="minimal_conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print(cfg.units)


if __name__ == "__main__":
    main()
