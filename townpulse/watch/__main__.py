from townpulse.watch.runner import main

main()
