"""The controller runtime shared by the controllers and the scheduler: work-queue runner,
controller base class and the Event recorder (what client-go and kube-controller-manager's
machinery are to Kubernetes' controllers)."""
