"""finsent above its stages: the whole-file config (each stage's section), the scripts' config
loader and the demo that runs the stages in turn. utils/ and the stage modules never import it."""
