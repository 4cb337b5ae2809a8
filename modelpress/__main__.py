from modelpress.cli import main

main()
